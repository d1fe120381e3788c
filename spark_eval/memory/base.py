"""The memory seam: recommend before a problem, learn after a round, hash the state it is in."""
from __future__ import annotations

from typing import Protocol, Sequence

from spark_eval.types import Problem, Recommendation, Record


class Memory(Protocol):
    name: str

    async def recommend(self, problem: Problem) -> Recommendation | None:
        """Advice for the coder on this problem, or None."""
        ...

    def learn(self, records: Sequence[Record]) -> None:
        """Update the memory from a round's finished records (already written to disk)."""
        ...

    def state_hash(self) -> str:
        """Content hash of the current state: recorded with every problem that saw it."""
        ...
