"""The judge seam: one verdict on one problem's answer or recommendation, blind to model and condition."""
from __future__ import annotations

from typing import Any, Protocol

from spark_eval.models.calls import Call
from spark_eval.types import Problem
from spark_eval.records import Judgment, Recommendation


class Judge(Protocol):
    name: str
    kind: str
    version: str

    async def grade(
        self, problem: Problem, code: str, recommendation: Recommendation | None, repeat: int = 0
    ) -> Judgment | None:
        """A verdict, or None when there is nothing to judge (no recommendation for a helpfulness judge).

        A verdict that could not be produced has score None and keeps the raw reply and the reason.
        """
        ...

    @classmethod
    def planned_calls(cls, model: Any, problem: Problem, recommendation: Recommendation | None,
                      repeats: int) -> list[Call]:
        """The model calls `grade` makes `repeats` times for `problem` with the model configured as `model` (the
        dry run's, before anything is built)."""
        ...
