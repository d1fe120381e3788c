"""The memory seam: prepare before the stream, recommend per problem, learn after each round, hash its state."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from spark_eval.errors import UserError
from spark_eval.models.calls import Call
from spark_eval.records import Recommendation, Record
from spark_eval.types import Problem


class MemoryConfigError(UserError, ValueError):
    """The memory config cannot work as given; the message names the key and the fix."""


class Memory(Protocol):
    name: str
    leaky: bool
    """True when the memory saw reference answers: every record of the run is marked `leaky`."""
    learns: bool
    """True when it changes during the stream: then rounds matter (problems of a round see one state)."""
    advises: bool
    """True when it may give advice (a recommendation the coder sees and a helpfulness judge grades)."""
    versions: dict[str, str]
    """Prompt/builder versions that change results (in every record and in the resume identity)."""
    # A memory may also have a `gate` (memory/gate.py: DraftGate, or None): asked before `recommend` whether to
    # speak at all, from the coder's draft without memory (pipeline/solve.py: advise_and_answer); and `reads_draft`
    # (True: the pipeline drafts first and hands `recommend` the draft's code even without a gate).

    async def prepare(self, problems: Sequence[Problem]) -> None:
        """Load or build what the stream needs (knowledge base, store, prior experience)."""
        ...

    async def recommend(self, problem: Problem, draft: str | None = None) -> Recommendation | None:
        """Advice for the coder on this problem, or None. `draft`: the code of the coder's answer without memory,
        when the pipeline made one first (a memory with a gate, or one that `reads_draft`); a memory may read it."""
        ...

    async def learn(self, records: Sequence[Record], epoch: int, round_: int) -> None:
        """Update the memory from a round's finished records (already written to disk)."""
        ...

    def state_hash(self) -> str:
        """Content hash of the current state: recorded with every problem that saw it."""
        ...

    def checkpoint(self, epoch: int) -> None:
        """Snapshot the state at the end of an epoch into the run directory."""
        ...

    def describe(self) -> dict[str, Any]:
        """The manifest's `memory` section (empty for no memory)."""
        ...

    def close(self) -> None: ...

    # what the dry run asks, before anything is built: the memory's config is `settings`

    @classmethod
    def planned_calls(cls, settings: Any, problem: Problem) -> list[Call]:
        """The model calls `recommend` makes for `problem`."""
        ...

    @classmethod
    def planned_learning(cls, settings: Any, benchmark: Any, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        """The model calls `prepare` and `learn` make for `rounds` (the records to make, a problem each, by round)."""
        ...

    @classmethod
    def searches_docs(cls, settings: Any) -> bool:
        """Whether `prepare` builds the documentation KB."""
        ...
