"""DS-1000 loading, selection, prompt building and answer post-processing."""

from spark_eval.data.ds1000 import DatasetError, dataset_hash, load_problems, select_problems
from spark_eval.data.answers import postprocess

__all__ = ["DatasetError", "dataset_hash", "load_problems", "postprocess", "select_problems"]
