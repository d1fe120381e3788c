"""Judges: code quality (1-5), recommendation helpfulness (five bands) and two answers compared (pairwise), blind to
model and condition."""

from spark_eval.judge.base import Judge
from spark_eval.judge.helpfulness import HelpfulnessJudge
from spark_eval.judge.pairwise import PairVerdict, PairwiseJudge
from spark_eval.judge.quality import QualityJudge

__all__ = ["HelpfulnessJudge", "Judge", "PairVerdict", "PairwiseJudge", "QualityJudge"]
