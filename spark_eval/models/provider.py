"""What every provider shares: the response cache, a bound on requests in flight, retries (models/retry.py), cost."""
from __future__ import annotations

import abc
import asyncio
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from spark_eval.models.base import ChatModel, GenerationParams, Message, ModelCallError, ModelConfigError
from spark_eval.models.cache import ResponseCache, request_key
from spark_eval.models.ledger import Ledger, price_usd, worst_case
from spark_eval.models.retry import BilledReply, Endpoint, Retries
from spark_eval.records import CAPPED, Completion


@dataclass(frozen=True)
class Reply:
    """One attempt's reply, as a provider reports it. Its counts are what the provider bills: `input_tokens` every
    prompt token (those read from and written to its prompt cache included), `output_tokens` every output token
    (thinking included)."""

    text: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    request_id: str | None = None
    cached_input_tokens: int = 0
    """Of `input_tokens`, read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, written to the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Of `output_tokens`, thinking the reply does not show."""


def cut_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """`text` up to the first of the stop sequences it holds, and whether one cut it (for engines and APIs that do not
    stop there themselves: the Responses API takes none, a grammar-constrained local reply runs past them)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def usable(reply: Reply, params: GenerationParams) -> Reply:
    """`reply`, unless it answers a structured request with nothing without having been capped (a server's glitch:
    billed, so charged, and asked again; models/retry.py)."""
    if params.json_schema is not None and not reply.text.strip() and reply.finish_reason != CAPPED:
        raise BilledReply(f"an empty reply to a structured request, finish reason {reply.finish_reason}", reply)
    return reply


class ProviderModel(ChatModel, abc.ABC):
    """A ChatModel: subclasses implement `_call` (one attempt); a remote one also says where its calls go
    (`endpoint`) and through which SDK (`_sdk`).

    A remote model's retries are ours (models/retry.py), not the SDKs' (their clients are built with
    `max_retries=0`): ours also cover replies that arrive broken, and they let every record say how many attempts its
    call took and charge every attempt the provider billed. An in-process model makes one attempt: its failure would
    not go away by asking again.

    Args:
        name: the name in run directories and records.
        model: the provider's model id.
        params: default generation parameters (temperature, max_tokens, reasoning_effort, ...).
        price: USD per million tokens, `{input, cached_input, cache_write, output}` (models/ledger.py: `price_usd`).
        concurrency: requests in flight at once.
        max_attempts: hard cap on attempts per request (a remote model's; the first included).
        backoff_s: first backoff; doubles with jitter up to a minute (unless the server says how long to wait).
        timeout_s: per-attempt timeout.
        cache_path: SQLite response cache (None: no cache).
        reasoning: whether this model thinks before it answers (None: the provider's `reasoning`); the dry run's.
    """

    provider = "base"

    remote = False
    """Whether its calls go to an API over the network (the dry run counts their API time); in-process models
    compute (their `speed` gives the dry run's compute time)."""

    reasoning = False
    """Whether its models think before they answer, unasked (their thinking counts as output); a model config's
    `reasoning` says so for one model of a provider that also serves others."""

    default_temperature = 0.0
    """The temperature a request without one is answered at: remote APIs sample, in-process engines decode greedily."""

    choice_probabilities = False
    """Whether a `choices` request (GenerationParams.extra `{"prefix", "options"}`) is answered with the probability
    of each option instead of a sampled reply, and a `score` request (`{"reply": text}`) with each of the reply's token
    log-probabilities (in-process models that expose their logits)."""

    ledger: Ledger | None = None
    """Where this model's calls reserve their worst case and are charged as they return (the run's ModelPool sets
    it; a budget may refuse a call there)."""

    batch_size: int | None = None
    """How many requests this model wants in flight at once, because it answers them as one batch (vLLM);
    None: whatever concurrency the caller chooses."""

    def __init__(
        self,
        name: str,
        model: str,
        params: dict[str, Any] | None = None,
        price: dict[str, float] | None = None,
        concurrency: int = 4,
        max_attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 300.0,
        cache_path: str | None = None,
        reasoning: bool | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.params = dict(params or {})
        self.price = dict(price or {})
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._loop_objects: dict[str, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._cache = ResponseCache(cache_path) if cache_path else None
        self._retries: Retries | None = None
        if reasoning is not None:
            self.reasoning = reasoning

    @classmethod
    def needs(cls, settings: dict[str, Any]) -> list[str]:
        """What running a model of these settings needs besides a key (which building it checks): the dry run's."""
        return []

    def start(self) -> None:
        """Get ready before the first request (load weights, start an engine), outside any request's timeout.
        A no-op for remote APIs; without it the first request gets ready itself."""

    def close(self) -> None:
        """Release what getting ready took (an engine, its GPU memory). A later request starts anew."""

    def default_params(self, **overrides: Any) -> GenerationParams:
        return GenerationParams(**{**self.params, **overrides})

    def identity(self) -> dict[str, Any]:
        """What, besides messages and params, decides the reply: part of the cache key."""
        return {"provider": self.provider, "model": self.model}

    def request_key(self, messages: list[Message], params: GenerationParams) -> str:
        """The response cache's key of this request."""
        return request_key({**self.identity(), "messages": messages, "params": asdict(params)})

    async def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        key = self.request_key(messages, params)
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            return Completion(**{**hit, "cached": True})
        billed: list[Reply] = []  # attempts whose replies were billed but could not be used
        async with self._slots_of_this_loop():
            worst = await self._reserve(messages, params)
            start = time.monotonic()
            try:
                reply, attempts = await self._call_with_retries(messages, params, billed.append)
            except BaseException as e:
                await self._settle(worst, self.cost(*billed) if billed else None, getattr(e, "attempts", len(billed)))
                raise
        replies = [*billed, reply]
        completion = Completion(
            text=reply.text,
            input_tokens=sum(r.input_tokens for r in replies),
            output_tokens=sum(r.output_tokens for r in replies),
            latency_s=round(time.monotonic() - start, 4),
            cost_usd=self.cost(*replies),
            cached=False,
            attempts=attempts,
            finish_reason=reply.finish_reason,
            request_id=reply.request_id,
            cached_input_tokens=sum(r.cached_input_tokens for r in replies),
            cache_write_tokens=sum(r.cache_write_tokens for r in replies),
            reasoning_tokens=sum(r.reasoning_tokens for r in replies),
        )
        if self._cache is not None:
            self._cache.put(key, asdict(completion))
        await self._settle(worst, completion.cost_usd, attempts)
        return completion

    async def _reserve(self, messages: list[Message], params: GenerationParams) -> float:
        """The call's worst case, held on the run's ledger (which refuses it past a budget)."""
        if self.ledger is None:
            return 0.0
        worst = worst_case(sum(len(m["content"]) for m in messages), params.max_tokens, self.price, 4096)
        await self.ledger.reserve(self.name, worst)
        return worst

    async def _settle(self, worst: float, usd: float | None, attempts: int) -> None:
        if self.ledger is not None:
            await self.ledger.settle(worst, usd, attempts)

    async def _call_with_retries(self, messages: list[Message], params: GenerationParams,
                                 billed: Callable[[Reply], None]) -> tuple[Reply, int]:
        """The reply and the attempts it took; a remote model retries (`retries`), an in-process one does not."""
        if self.remote:
            return await self.retries.call(lambda: self._timed_call(messages, params), billed)
        try:
            return await self._timed_call(messages, params), 1
        except Exception as e:
            raise ModelCallError(f"{self.name}: {type(e).__name__}: {e}", 1) from e

    async def _timed_call(self, messages: list[Message], params: GenerationParams) -> Reply:
        async with asyncio.timeout(self.timeout_s):  # no task per call, unlike wait_for
            return await self._call(messages, params)

    @property
    def retries(self) -> Retries:
        """How this model's calls are retried and their failures told (made on first use: it names `endpoint`)."""
        if self._retries is None:
            self._retries = Retries(self.endpoint(), self._sdk, self.max_attempts, self.backoff_s)
        return self._retries

    _sdk: Any = None
    """The SDK module a remote model's attempts raise the errors of (models/retry.py reads them)."""

    def endpoint(self) -> Endpoint:
        """Where this model's calls go, as its errors name it."""
        return Endpoint(self.name, "in-process", self.model)

    def cost(self, *replies: Reply) -> float:
        """What the provider bills for `replies`, at this model's prices."""
        return round(sum(price_usd(self.price, r.input_tokens, r.output_tokens, r.cached_input_tokens,
                                   r.cache_write_tokens) for r in replies), 8)

    async def aclose(self) -> None:
        """Close the SDK client this event loop made, while the loop still runs (left to the garbage collector,
        its connections would be closed after the loop has ended, with an error on stderr)."""
        made = self._loop_objects.get("client")
        if made is not None and made[0] is asyncio.get_running_loop():
            del self._loop_objects["client"]
            if self._given_http_client is None:  # a client given from outside is its owner's to close
                await made[1].close()

    _given_http_client: Any = None

    def _http_client(self, sdk: Any) -> Any:
        """The HTTP client an SDK client of this loop sends through: the one given (tests inject transports), else
        the SDK's aiohttp client. httpx's connection pool costs CPU per request that grows with the connections
        open (at 64 in flight it was a third of the harness's time per call: bench/bench_models.py)."""
        return self._given_http_client or sdk.DefaultAioHttpClient()

    def _slots_of_this_loop(self) -> asyncio.Semaphore:
        return self._of_this_loop("slots", lambda: asyncio.Semaphore(self.concurrency))

    def _of_this_loop(self, what: str, make: Any) -> Any:
        """Semaphores and SDK clients belong to one event loop; each `asyncio.run` gets its own."""
        loop = asyncio.get_running_loop()
        if self._loop_objects.get(what, (None, None))[0] is not loop:
            self._loop_objects[what] = (loop, make())
        return self._loop_objects[what][1]

    @abc.abstractmethod
    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        """One attempt."""


def api_key_from(variable: str, provider: str) -> str:
    """The key in `variable`, or a ModelConfigError naming the variable to set (before any call is made)."""
    key = os.environ.get(variable, "")
    if not key:
        raise ModelConfigError(f"{provider} needs an API key: set the environment variable {variable}")
    return key
