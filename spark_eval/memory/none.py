"""The null memory: the model alone (the paper's NO-SPARK condition)."""
from __future__ import annotations

import hashlib
from typing import Sequence

from spark_eval.types import Problem, Recommendation, Record

_EMPTY_STATE = hashlib.sha256(b"").hexdigest()


class NoMemory:
    """Recommends nothing and learns nothing, so the runner never asks whether a memory exists."""

    def __init__(self, name: str = "none") -> None:
        self.name = name

    async def recommend(self, problem: Problem) -> Recommendation | None:
        return None

    def learn(self, records: Sequence[Record]) -> None:
        return None

    def state_hash(self) -> str:
        return _EMPTY_STATE
