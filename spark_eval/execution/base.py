"""The execution seam: a Sandbox runs one test program and returns an ExecResult."""
from __future__ import annotations

from typing import Protocol

from spark_eval.records import ExecResult

OUTPUT_VERSION = "places-1"
"""What a program's output tail holds: since places-1, the checkout, grading env and scratch folder as names, not
paths. The learner is shown it, so it is in every record's versions."""


class Sandbox(Protocol):
    def run(self, program: str, requires: tuple[str, ...] = ()) -> ExecResult:
        """Run `program` in isolation; `skipped` when a module in `requires` is not installed."""
        ...
