"""Statistics from run directories only: a tidy frame, paired tests, clustered bootstrap intervals."""

from spark_eval.stats.analysis import Analysis, analyse
from spark_eval.stats.load import ResultsError, Run, load_frame, load_runs, tidy, to_parquet

__all__ = ["Analysis", "ResultsError", "Run", "analyse", "load_frame", "load_runs", "tidy", "to_parquet"]
