"""The runner: conditions, epochs and rounds over problems, written to a resumable run directory."""

from spark_eval.pipeline.runner import run

__all__ = ["run"]
