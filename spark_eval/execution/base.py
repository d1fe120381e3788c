"""The execution seam: a Sandbox runs one test program and returns an ExecResult."""
from __future__ import annotations

from typing import Protocol

from spark_eval.records import ExecResult



class Sandbox(Protocol):
    def run(self, program: str, requires: tuple[str, ...] = ()) -> ExecResult:
        """Run `program` in isolation; `skipped` when a module in `requires` is not installed."""
        ...
