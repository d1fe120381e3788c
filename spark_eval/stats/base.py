"""What every statistics module shares: the error a glob of runs cannot be analysed with, and the reference line's
name. Here, below them all, so no two of them import each other."""
from __future__ import annotations

from spark_eval.errors import UserError

REFERENCE = "reference"
"""The model name of DS-1000's reference solutions: the human line, never a compared condition."""


class ResultsError(UserError):
    """The run directories given to stage=report cannot be analysed; the message names the fix."""
