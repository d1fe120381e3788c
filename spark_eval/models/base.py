"""The model seams: ChatModel (messages in, Completion out) and Coder (a problem in, an answer out)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from spark_eval.errors import UserError
from spark_eval.models.calls import Call
from spark_eval.records import Completion, Recommendation
from spark_eval.types import Message, Problem


class ModelConfigError(UserError, ValueError):
    """A model cannot be used as configured (missing key, missing weights); the message names the fix."""


class ModelCallError(UserError, RuntimeError):
    """A request that failed for good, after `attempts` tries; `fix`, when given, closes the line."""

    def __init__(self, message: str, attempts: int, fix: str = "") -> None:
        tries = f" (after {attempts} attempt{'s' * (attempts != 1)})"
        super().__init__(f"{message}{tries}: {fix}" if fix else f"{message}{tries}")
        self.attempts = attempts


class ModelUnavailable(ModelCallError):
    """Every call of this model would fail as it is configured: nothing answers at its URL, its key is refused, the
    server has no such model or endpoint. Not a record's error: the run (or judge pass) stops with this one line,
    which names the fix, instead of writing an error record per problem; its finished work is kept."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        Exception.__init__(self, message)
        self.attempts = attempts


@dataclass(frozen=True)
class GenerationParams:
    """Everything about one request besides the messages; all of it is part of the cache key."""

    temperature: float | None = 0.0
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    seed: int | None = None
    reasoning_effort: str | None = None
    json_schema: dict[str, Any] | None = None
    """Structured output: the reply must be JSON matching this schema."""
    repeat: int = 0
    """Which sample of the same request this is (repeats must not share a cache entry)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider-specific fields, passed through as they are."""


class Pooled(Protocol):
    """What the run's ModelPool does with every model it holds (a chat model, or a coder that replays answers):
    get it ready, bound its requests, close it. The defaults suit a model that holds nothing; a model declares
    itself one by subclassing."""

    ledger: Any = None
    """The run's `Ledger` (models/ledger.py, which stands on this module), set by the pool: where paid calls
    reserve their worst case and are charged. A model that makes no paid calls ignores it."""
    concurrency: int = 1
    """Requests it takes in flight at once."""
    batch_size: int | None = None
    """Requests it wants in flight at once because it answers them as one batch (vLLM); None: `concurrency`."""

    def at_once(self) -> int:
        """How many requests to keep in flight: its batch, else its `concurrency`."""
        return int(self.batch_size or self.concurrency or 1)

    def start(self) -> None:
        """Get ready before the first request (load weights, start an engine), outside any request's timeout."""
        return None

    def close(self) -> None:
        """Release what getting ready took (an engine, its GPU memory). A later request starts anew."""
        return None

    async def aclose(self) -> None:
        """Close what this event loop made (an SDK client) while the loop still runs."""
        return None


class ChatModel(Pooled, Protocol):
    name: str
    remote: bool
    """Calls go to an API over the network (else the model computes in this process)."""
    reasoning: bool
    """It thinks before it answers, unasked."""
    default_temperature: float
    """The temperature a request that sends none is answered at."""

    async def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        """One reply; raises ModelCallError when the request finally fails (never an empty answer)."""
        ...

    def default_params(self, **overrides: Any) -> GenerationParams:
        """The configured generation parameters, with `overrides` applied."""
        ...


class Coder(Protocol):
    name: str

    async def answer(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> Completion:
        """The raw answer text (post-processing happens downstream, identically for every coder)."""
        ...

    @classmethod
    def planned_calls(cls, model: Any, benchmark: Any, problem: Problem,
                      recommendation: Recommendation | None) -> list[Call]:
        """The model calls `answer` makes for `problem` with the model configured as `model` (the dry run's)."""
        ...
