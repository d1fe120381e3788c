"""The null memory: the model alone (the paper's NO-SPARK condition)."""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

from spark_eval.models.calls import Call
from spark_eval.types import Problem
from spark_eval.records import Recommendation, Record

_EMPTY_STATE = hashlib.sha256(b"").hexdigest()


class NoMemory:
    """Recommends nothing and learns nothing, so the runner never asks whether a memory exists."""

    leaky = False
    learns = False
    advises = False

    def __init__(self, name: str = "none", **_: Any) -> None:
        self.name = name
        self.versions: dict[str, str] = {}

    async def prepare(self, problems: Sequence[Problem]) -> None:
        return None

    async def recommend(self, problem: Problem, draft: str | None = None) -> Recommendation | None:
        return None

    async def learn(self, records: Sequence[Record], epoch: int, round_: int) -> None:
        return None

    def state_hash(self) -> str:
        return _EMPTY_STATE

    def checkpoint(self, epoch: int) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None

    @classmethod
    def planned_calls(cls, settings: Any, problem: Problem) -> list[Call]:
        return []

    @classmethod
    def planned_learning(cls, settings: Any, benchmark: Any, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        return []

    @classmethod
    def searches_docs(cls, settings: Any) -> bool:
        return False
