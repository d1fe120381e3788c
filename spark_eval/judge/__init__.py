"""Judges: code quality (1-5) and recommendation helpfulness (five bands), blind to model and condition."""

from spark_eval.judge.base import Judge
from spark_eval.judge.helpfulness import HelpfulnessJudge
from spark_eval.judge.quality import QualityJudge

__all__ = ["HelpfulnessJudge", "Judge", "QualityJudge"]
