"""What a run's paid model calls cost, as they return, and a limit a call must pass before it is sent.

Every model of a run's pool charges one `Ledger`. A budget (pipeline/budget.py) is its `limit`: before a call goes
out, its worst case (`worst_case`: the prompt at 3 characters per token, the whole `max_tokens` as output, at the
model's prices) is held there; a call whose worst case does not fit under the cap waits while calls in flight may
free room, and with none in flight is refused with `BudgetExhausted`; the calls already sent finish and settle at
their real cost. The limit may share its cap with other processes through a file, so the ledger asks it in a
thread, never on the event loop. A caller that cannot wait (the embedder, which blocks) holds and settles with
`reserve_now` and `settle_now`.

A call costs what its provider bills (`price_usd`): prompt tokens at the input price, those read from the provider's
prompt cache at `cached_input` and those written to it at `cache_write` (each the input price when not set), every
output token, thinking included, at the output price. Every billed attempt of a call is charged, also one whose
reply could not be used and was asked again (models/retry.py).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Mapping, NamedTuple, Protocol

from spark_eval.models.base import ModelCallError

CHARS_PER_TOKEN_AT_MOST = 3  # prompts run about 3.5-4 characters a token; 3 errs on the side of the cap
LOOK_AGAIN_S = 0.5  # how long a call that does not fit waits before asking again (other processes settle unseen)


class BudgetExhausted(ModelCallError):
    """A call the budget refused: sent, it could take the spend past `budget.usd`. Not an outage: the record it was
    for is not written, and a resume with a higher cap makes it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 0)


class Hold(NamedTuple):
    """A limit's answer to a call's worst case."""

    held: bool
    """The worst case fits under the cap and is now held."""
    in_flight: bool
    """Calls the cap counts are in flight: their settling may make room (else a call that does not fit never will)."""


class Limit(Protocol):
    """Where calls' worst cases are held and settled (a budget). Both may wait on a file other processes share."""

    def hold(self, worst_case: float) -> Hold: ...

    def settle(self, worst_case: float, usd: float) -> None: ...


class Ledger:
    """USD spent by a run's model calls (cache hits cost nothing), the worst cases of its calls in flight, and the
    limit (set by a budget) that holds them."""

    def __init__(self) -> None:
        self.usd = 0.0
        self.calls = 0
        self.attempts = 0
        """Attempts of the calls settled, retries included (a cache hit makes none)."""
        self.reserved = 0.0
        self.limit: Limit | None = None
        self._settled: tuple[asyncio.AbstractEventLoop, asyncio.Condition] | None = None

    async def reserve(self, name: str, worst_case: float) -> None:
        """Before a call: hold its worst case (waiting while calls in flight may make room), or BudgetExhausted. A
        call that costs nothing (a free model) passes without asking."""
        while self.limit is not None and worst_case > 0:
            hold = await asyncio.to_thread(self.limit.hold, worst_case)
            if hold.held:
                break
            if not hold.in_flight:
                raise self._refused(name, worst_case)
            await self._next_settle()
        self.reserved += worst_case

    def reserve_now(self, name: str, worst_case: float) -> None:
        """`reserve`, for a caller that blocks (the embedder): a worst case that does not fit now is refused at once
        (calls in flight cannot settle while it blocks)."""
        if self.limit is not None and worst_case > 0 and not self.limit.hold(worst_case).held:
            raise self._refused(name, worst_case)
        self.reserved += worst_case

    async def settle(self, worst_case: float, usd: float | None, attempts: int = 1) -> None:
        """After a call of `attempts` attempts: its hold released, what it was billed (None: nothing, it failed
        before any reply) charged."""
        self._count(worst_case, usd, attempts)
        if self.limit is not None and (worst_case > 0 or usd):
            await asyncio.to_thread(self.limit.settle, worst_case, usd or 0.0)
            settled = self._condition()
            async with settled:
                settled.notify_all()

    def settle_now(self, worst_case: float, usd: float | None, attempts: int = 1) -> None:
        """`settle`, for a caller that blocks (calls waiting for room look again within LOOK_AGAIN_S)."""
        self._count(worst_case, usd, attempts)
        if self.limit is not None and (worst_case > 0 or usd):
            self.limit.settle(worst_case, usd or 0.0)

    def _count(self, worst_case: float, usd: float | None, attempts: int) -> None:
        self.reserved = max(0.0, self.reserved - worst_case)
        self.attempts += attempts
        if usd is not None:
            self.usd += usd
            self.calls += 1

    def _refused(self, name: str, worst_case: float) -> BudgetExhausted:
        return BudgetExhausted(f"{name}: this call could take the spend past budget.usd (worst case "
                               f"${worst_case:.4f}, ${self.usd:.4f} spent by this attempt)")

    async def _next_settle(self) -> None:
        """Until a call of this process settles, or LOOK_AGAIN_S (a call of another process settles unseen)."""
        settled = self._condition()
        async with settled:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOOK_AGAIN_S):
                    await settled.wait()

    def _condition(self) -> asyncio.Condition:
        """One condition per event loop (each `asyncio.run` of a run gets its own)."""
        loop = asyncio.get_running_loop()
        if self._settled is None or self._settled[0] is not loop:
            self._settled = (loop, asyncio.Condition())
        return self._settled[1]


def price_usd(price: Mapping[str, float | None], input_tokens: float, output_tokens: float,
              cached_input_tokens: float = 0, cache_write_tokens: float = 0) -> float:
    """What a call costs at `price` (USD per million tokens: `input`, `cached_input`, `cache_write`, `output`).
    `input_tokens` counts every prompt token, those read from (`cached_input_tokens`) and written to
    (`cache_write_tokens`) the provider's prompt cache included; each of those is billed at its own price (the input
    price when it has none). `output_tokens` counts every output token, thinking included (billed as output)."""
    full = _price(price, "input")
    fresh = max(0.0, input_tokens - cached_input_tokens - cache_write_tokens)
    return (fresh * full + cached_input_tokens * _price(price, "cached_input", full)
            + cache_write_tokens * _price(price, "cache_write", full) + output_tokens * _price(price, "output")) / 1e6


def worst_case(prompt_chars: int, max_tokens: int | None, price: Mapping[str, float | None],
               fallback_tokens: int) -> float:
    """The most a call may cost: its prompt at CHARS_PER_TOKEN_AT_MOST, at the dearer of the input and cache-write
    prices; all of `max_tokens` (else `fallback_tokens`) as output."""
    prompt = max(_price(price, "input"), _price(price, "cache_write", 0.0))
    dearest = {"input": prompt, "output": _price(price, "output")}
    return price_usd(dearest, prompt_chars / CHARS_PER_TOKEN_AT_MOST, max_tokens or fallback_tokens)


def _price(price: Mapping[str, float | None], part: str, otherwise: float = 0.0) -> float:
    found = price.get(part)
    return otherwise if found is None else float(found)
