"""The judge seam: one verdict on one problem's answer (and its recommendation, if any)."""
from __future__ import annotations

from typing import Protocol

from spark_eval.types import Judgment, Problem, Recommendation


class Judge(Protocol):
    name: str

    async def grade(self, problem: Problem, code: str, recommendation: Recommendation | None) -> Judgment:
        """A verdict; a verdict that could not be produced has score None and keeps the raw reply."""
        ...
