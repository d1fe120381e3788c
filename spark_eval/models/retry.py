"""Retries of a remote model's calls: which failures are worth another attempt, how long to wait before it, and the
one line a call that fails for good ends in. Every remote provider (models/openai.py, models/anthropic.py) and the
OpenAI embedder (memory/embed.py) send through their SDK's own client with its retries off (`max_retries=0`) and
retry here, so that every attempt is counted and every billed one charged.

- **Transient**, retried up to `model.max_attempts`: HTTP 408, 409, 429 and every 5xx, timeouts, connections that
  drop or reset, a reply that arrives broken (cut short, unparseable), and a reply that arrived billed but cannot be
  used (`BilledReply`: its usage is charged, then the request is made again). The wait is what the server asks in
  `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped at RETRY_AFTER_CAP_S; else exponential with
  jitter from `model.backoff_s`, capped at BACKOFF_CAP_S.
- **Final**, not retried: a request the server refuses (400, 422 and any other 4xx not named here), which asking
  again would not change; the record it was for ends in that one line as its error.
- **Unavailable**, not retried: what makes every call fail, so that the run stops with one line instead of writing
  an error record per problem (`ModelUnavailable`): nothing listening at the URL, a key refused (401, 403), a model
  or endpoint the server does not have (404), an account without quota (429 `insufficient_quota`).
"""
from __future__ import annotations

import asyncio
import email.utils
import enum
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

from tenacity import (AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

from spark_eval.models.base import ModelCallError, ModelConfigError, ModelUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER_CAP_S = 60.0
"""The longest a server's `Retry-After` is waited before the next attempt (a longer one is cut to it)."""
BACKOFF_CAP_S = 60.0
"""The longest an exponential backoff waits."""
RETRYABLE_STATUS = frozenset({408, 409, 429})
"""The 4xx statuses worth another attempt (every 5xx is)."""
SHOWN_CHARS = 300
"""How much of a server's error message a one-line error shows."""


class Failure(enum.Enum):
    TRANSIENT = "transient"
    """Worth another attempt."""
    FINAL = "final"
    """This request fails as it is: the record's error."""
    UNAVAILABLE = "unavailable"
    """Every call would fail: the run stops."""


@dataclass(frozen=True)
class Endpoint:
    """Where a model's calls go, as its one-line errors name it."""

    name: str
    """The model's name in runs."""
    base_url: str
    """Where requests go (the SDK's default when no `model.base_url` is set)."""
    model: str
    """The provider's model id."""
    key_env: str | None = None
    """The environment variable holding the key (None: the server takes none)."""
    settings: str = "model.params"
    """The settings a request the server refuses points at."""
    config: str = "model"
    """The config node its settings are in (`model`, `embedder`): what its errors' fixes name."""


@dataclass(frozen=True)
class Verdict:
    """What a failed attempt means: whether to try again, its cause and its fix, each on one line."""

    failure: Failure
    cause: str
    fix: str = ""


class BilledReply(Exception):
    """A reply that arrived and is billed but cannot be used (a structured request answered with nothing): its
    `reply` (the provider's `Reply`, with its usage) is charged and the request made again; the last attempt's is
    handed back as the reply."""

    def __init__(self, reason: str, reply: Any) -> None:
        super().__init__(reason)
        self.reply = reply


def judge(error: BaseException, where: Endpoint, sdk: Any = None) -> Verdict:
    """What `error`, raised by an attempt through `sdk` (the OpenAI or Anthropic SDK module: they share their error
    classes' names), means for the call."""
    url, model, c = where.base_url, where.model, where.config
    if refused(error):
        return Verdict(Failure.UNAVAILABLE, f"nothing answers at {url} (connection refused)",
                       f"start the server or set {c}.base_url")
    if isinstance(error, BilledReply):
        return Verdict(Failure.TRANSIENT, f"an unusable reply ({error})", f"try again later, or raise {c}.max_attempts")
    status = getattr(error, "status_code", None) if sdk is None or isinstance(error, sdk.APIStatusError) else None
    if isinstance(status, int):
        said = server_message(error)
        if status == 429 and "insufficient_quota" in f"{getattr(error, 'code', '')} {said}":
            return Verdict(Failure.UNAVAILABLE, f"the server at {url} answered 429 ({said})",
                           f"the account of the key in {where.key_env or c + '.api_key_env'} has no quota left")
        if status in RETRYABLE_STATUS or status >= 500:
            return Verdict(Failure.TRANSIENT, f"the server at {url} answered {status} ({said})",
                           f"try again later, or raise {c}.max_attempts")
        if status == 401:
            key = (f"set {where.key_env} to a valid key" if where.key_env
                   else f"set {c}.api_key_env to the variable holding its key")
            return Verdict(Failure.UNAVAILABLE, f"the server at {url} refused the key (401: {said})", key)
        if status in (403, 404):
            fix = (f"check that the key may use {c}.model" if status == 403 else f"check {c}.model / {c}.base_url")
            return Verdict(Failure.UNAVAILABLE, f"the server at {url} answered {status} for model {model!r} ({said})",
                           fix)
        return Verdict(Failure.FINAL, f"the server at {url} answered {status} for model {model!r} ({said})",
                       f"check {where.settings}")
    if isinstance(error, TimeoutError) or (sdk is not None and isinstance(error, sdk.APITimeoutError)):
        return Verdict(Failure.TRANSIENT, f"no reply from {url} in time", f"raise {c}.timeout_s, or try again later")
    import aiohttp  # the SDKs' transport: its own errors may come unwrapped (a bad status line, a short body)

    if isinstance(error, aiohttp.InvalidURL):
        return Verdict(Failure.UNAVAILABLE, f"{url} is not a URL requests can go to",
                       f"set {c}.base_url to http(s)://<host>:<port>/v1")
    broken = (json.JSONDecodeError, aiohttp.ClientError, ConnectionError)
    if isinstance(error, broken) or (sdk is not None and isinstance(error, (sdk.APIConnectionError,
                                                                             sdk.APIResponseValidationError))):
        shown = one_line(f"{type(error).__name__}: {error}")
        return Verdict(Failure.TRANSIENT, f"the connection to {url} broke or its reply came broken ({shown})",
                       f"try again later, or raise {c}.max_attempts")
    return Verdict(Failure.FINAL, one_line(f"{type(error).__name__}: {error}"))


def refused(error: BaseException) -> bool:
    """Whether nothing listens where `error`'s request went: a refused connection anywhere in its chain of causes
    (the SDKs wrap it, one of them as a timeout)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or isinstance(getattr(cause, "os_error", None),
                                                                    ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def server_message(error: BaseException) -> str:
    """The server's own words for a status error (its JSON `message`, else its body), on one line."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        found = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if isinstance(found, str) and found.strip():
            return one_line(found)
    if body:
        return one_line(str(body))
    return one_line(str(error))


def one_line(text: str) -> str:
    """`text` with its whitespace runs made single spaces, cut to SHOWN_CHARS."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 3] + "..."


def retry_after_s(error: BaseException | None) -> float | None:
    """The wait a server asked for in the reply that failed: `retry-after-ms`, else `Retry-After` as seconds or as an
    HTTP date; capped at RETRY_AFTER_CAP_S, never below 0. None: it asked for none (or nothing parseable)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        return None
    told: float | None = None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        told = _number(milliseconds)
        told = None if told is None else told / 1000
    seconds = headers.get("retry-after")
    if told is None and seconds is not None:
        told = _number(seconds)
        if told is None:
            try:
                when = email.utils.parsedate_to_datetime(seconds)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            told = (when - datetime.now(timezone.utc)).total_seconds()
    if told is None:
        return None
    return min(max(told, 0.0), RETRY_AFTER_CAP_S)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Retries:
    """How one model's calls are made again: up to `max_attempts` attempts, waiting as the server asks or backing
    off from `backoff_s`; a call that fails for good raises one line (`ModelCallError`, or `ModelUnavailable`).

    Args:
        where: what its errors name.
        sdk: the SDK module whose errors the attempts raise (None: only the transport's and Python's own).
        max_attempts: attempts per call, the first included.
        backoff_s: the first backoff; it doubles, with up to as much again of jitter, to BACKOFF_CAP_S.
    """

    def __init__(self, where: Endpoint, sdk: Any, max_attempts: int, backoff_s: float) -> None:
        if max_attempts < 1:
            raise ModelConfigError(f"{where.config}.max_attempts={max_attempts} allows no call; give 1 or more")
        self.where, self.sdk, self.max_attempts = where, sdk, max_attempts
        self._backoff = wait_exponential_jitter(multiplier=backoff_s, max=BACKOFF_CAP_S, jitter=backoff_s)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How an async call waits (tenacity's `sleep`); a test may record the waits instead."""
        self.sleep_sync: Callable[[float], None] = time.sleep
        """How a blocking call waits."""

    def wait_s(self, state: RetryCallState) -> float:
        """Before the next attempt: what the server asked for, else the backoff."""
        error = state.outcome.exception() if state.outcome is not None else None
        told = retry_after_s(error)
        return float(self._backoff(state)) if told is None else told

    def verdict(self, error: BaseException) -> Verdict:
        return judge(error, self.where, self.sdk)

    async def call(self, attempt: Callable[[], Awaitable[T]], billed: Callable[[Any], None]) -> tuple[T, int]:
        """`attempt()` until it succeeds or fails for good: its result and the attempts made. The reply of each
        `BilledReply` that is asked again goes to `billed` (to be charged); the last attempt's, still unusable, is
        handed back as the result (an unusable reply is a recorded fact, not an outage)."""
        made = 0
        try:
            async for trying in AsyncRetrying(**self._policy(billed), sleep=self.sleep):
                with trying:
                    made = trying.retry_state.attempt_number
                    result = await attempt()
        except BilledReply as e:
            return e.reply, made
        except Exception as e:
            raise self.failed(e, made) from e
        return result, made

    def call_sync(self, attempt: Callable[[], T], billed: Callable[[Any], None]) -> tuple[T, int]:
        """`call`, for a blocking caller."""
        made = 0
        try:
            for trying in Retrying(**self._policy(billed), sleep=self.sleep_sync):
                with trying:
                    made = trying.retry_state.attempt_number
                    result = attempt()
        except BilledReply as e:
            return e.reply, made
        except Exception as e:
            raise self.failed(e, made) from e
        return result, made

    def failed(self, error: Exception, attempts: int) -> ModelCallError:
        """The one line a call that failed for good raises, after `attempts` attempts."""
        if isinstance(error, ModelCallError):
            return error
        verdict = self.verdict(error)
        if verdict.failure is Failure.UNAVAILABLE:
            return ModelUnavailable(f"{self.where.name}: {verdict.cause}: {verdict.fix}", attempts)
        return ModelCallError(f"{self.where.name}: {verdict.cause}", attempts, verdict.fix)

    def _policy(self, billed: Callable[[Any], None]) -> dict[str, Any]:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, BilledReply):
                billed(error.reply)  # asked again: this one is charged apart
            cause = self.verdict(error).cause if error is not None else "?"
            log.info("%s: attempt %d failed (%s); again in %.1f s", self.where.name, state.attempt_number, cause,
                     state.upcoming_sleep)

        return {"stop": stop_after_attempt(self.max_attempts), "wait": self.wait_s, "reraise": True,
                "retry": retry_if_exception(lambda e: self.verdict(e).failure is Failure.TRANSIENT),
                "before_sleep": before_sleep}
