"""The execution seam: a Sandbox runs one test program and returns an ExecResult."""
from __future__ import annotations

from typing import Any, Protocol, Self

from spark_eval.execution.environment import GradingEnvironment
from spark_eval.records import ExecResult

OUTPUT_VERSION = "places-1"
"""What a program's output tail holds: since places-1, the checkout, grading env and scratch folder as names, not
paths. The learner is shown it, so it is in every record's versions."""


class Sandbox(Protocol):
    """Runs test programs, `workers` at a time, in a grading environment; a run holds it open (`with sandbox:`)."""

    workers: int
    """Programs run at once (the runner keeps at least as many problems in flight)."""
    environment: GradingEnvironment
    """The grading interpreter: its freeze hash is part of the run's identity."""
    isolation: str
    """The isolation in force (`bwrap` or `process`; what `auto` became): part of the run's identity."""

    def run(self, program: str, requires: tuple[str, ...] = ()) -> ExecResult:
        """Run `program` in isolation; `skipped` when a module in `requires` is not installed."""
        ...

    def start(self) -> None:
        """Start every worker now, so a broken grading environment stops a run before any model call (a sandbox
        without workers to start does nothing)."""
        return None

    def close(self) -> None:
        """Stop every worker and release what they held."""
        return None

    def describe(self) -> dict[str, Any]:
        """The execution setup as the manifest records it."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
