"""What every provider shares: the response cache, a bound on requests in flight, retries, cost."""
from __future__ import annotations

import abc
import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from spark_eval.models.base import ChatModel, GenerationParams, Message, ModelCallError, ModelConfigError
from spark_eval.models.cache import ResponseCache, request_key
from spark_eval.models.ledger import Ledger, price_usd, worst_case
from spark_eval.records import Completion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """One successful attempt, as a provider reports it."""

    text: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    request_id: str | None = None


class ProviderModel(ChatModel, abc.ABC):
    """A ChatModel: subclasses implement `_call` (one attempt) and `_retryable`.

    Retries are ours, not the SDKs' (their clients are built with `max_retries=0`): ours also cover
    replies that arrive broken, and they let every record say how many attempts its call took.

    Args:
        name: the name in run directories and records.
        model: the provider's model id.
        params: default generation parameters (temperature, max_tokens, reasoning_effort, ...).
        price: USD per million tokens, `{input: .., output: ..}`.
        concurrency: requests in flight at once.
        max_attempts: hard cap on attempts per request.
        backoff_s: first backoff; doubles with jitter up to a minute.
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
    of each option instead of a sampled reply (in-process models that expose their logits)."""

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
        max_attempts: int = 5,
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
        async with self._slots_of_this_loop():
            worst = await self._reserve(messages, params)
            start = time.monotonic()
            try:
                reply, attempts = await self._call_with_retries(messages, params)
            except BaseException:
                await self._settle(worst, None)
                raise
        completion = Completion(
            text=reply.text,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            latency_s=round(time.monotonic() - start, 4),
            cost_usd=self.cost(reply.input_tokens, reply.output_tokens),
            cached=False,
            attempts=attempts,
            finish_reason=reply.finish_reason,
            request_id=reply.request_id,
        )
        if self._cache is not None:
            self._cache.put(key, asdict(completion))
        await self._settle(worst, completion.cost_usd)
        return completion

    async def _reserve(self, messages: list[Message], params: GenerationParams) -> float:
        """The call's worst case, held on the run's ledger (which refuses it past a budget)."""
        if self.ledger is None:
            return 0.0
        worst = worst_case(sum(len(m["content"]) for m in messages), params.max_tokens, self.price, 4096)
        await self.ledger.reserve(self.name, worst)
        return worst

    async def _settle(self, worst: float, usd: float | None) -> None:
        if self.ledger is not None:
            await self.ledger.settle(worst, usd)

    async def _call_with_retries(self, messages: list[Message], params: GenerationParams) -> tuple[Reply, int]:
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_s, max=60.0, jitter=self.backoff_s),
            retry=retry_if_exception(self._retryable),
            before_sleep=lambda state: log.info("%s: retrying after %s", self.name, state.outcome.exception()),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    async with asyncio.timeout(self.timeout_s):  # no task per call, unlike wait_for
                        reply = await self._call(messages, params)
        except Exception as e:
            raise ModelCallError(f"{self.name}: {type(e).__name__}: {e}", attempts) from e
        return reply, attempts

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round(price_usd(self.price, input_tokens, output_tokens), 8)

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

    def _retryable(self, error: BaseException) -> bool:
        return isinstance(error, asyncio.TimeoutError)


def api_key_from(variable: str, provider: str) -> str:
    """The key in `variable`, or a ModelConfigError naming the variable to set (before any call is made)."""
    key = os.environ.get(variable, "")
    if not key:
        raise ModelConfigError(f"{provider} needs an API key: set the environment variable {variable}")
    return key


RETRYABLE_STATUS = {408, 409, 429}


def transient_sdk_error(sdk: Any, error: BaseException) -> bool:
    """For the OpenAI and Anthropic SDKs (same error classes): worth another attempt?

    Dropped connections, timeouts, replies that arrive broken (also as the aiohttp transport's own errors),
    408/409/429 and every 5xx.
    """
    if isinstance(error, (sdk.APIConnectionError, sdk.APITimeoutError, sdk.APIResponseValidationError,
                          json.JSONDecodeError, asyncio.TimeoutError)):
        return True
    import aiohttp  # the SDKs' transport: a reply it cannot parse (a bad status line, a short body) comes unwrapped

    if isinstance(error, aiohttp.ClientError):
        return not isinstance(error, aiohttp.InvalidURL)  # a wrong base_url stays wrong
    return isinstance(error, sdk.APIStatusError) and (error.status_code in RETRYABLE_STATUS or error.status_code >= 500)
