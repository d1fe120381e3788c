"""Judges: grade code quality and recommendation helpfulness, blind to model and condition."""

from spark_eval.judge.base import Judge

__all__ = ["Judge"]
