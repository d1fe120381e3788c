"""The coder seam: anything that answers a problem, given an optional recommendation from memory."""
from __future__ import annotations

from typing import Protocol

from spark_eval.types import Completion, Problem, Recommendation


class Coder(Protocol):
    name: str

    async def answer(self, problem: Problem, recommendation: Recommendation | None) -> Completion:
        """The raw answer text (post-processing happens downstream, identically for every coder)."""
        ...
