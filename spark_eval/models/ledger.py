"""What a run's paid model calls cost, as they return, and a limit a call must pass before it is sent.

Every model of a run's pool charges one `Ledger`. A budget (pipeline/budget.py) is its `limit`: before a call goes
out, its worst case (`worst_case`: the prompt at 3 characters per token, the whole `max_tokens` as output, at the
model's prices) is held there; a call whose worst case does not fit under the cap waits while calls in flight may
free room, and with none in flight is refused with `BudgetExhausted`; the calls already sent finish and settle at
their real cost. The limit may share its cap with other processes through a file, so the ledger asks it in a
thread, never on the event loop.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import NamedTuple, Protocol

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
                raise BudgetExhausted(f"{name}: this call could take the spend past budget.usd (worst case "
                                      f"${worst_case:.4f}, ${self.usd:.4f} spent by this attempt)")
            await self._next_settle()
        self.reserved += worst_case

    async def settle(self, worst_case: float, usd: float | None) -> None:
        """After a call: its hold released, its real cost (None: it failed) charged."""
        self.reserved = max(0.0, self.reserved - worst_case)
        if usd is not None:
            self.usd += usd
            self.calls += 1
        if self.limit is not None and (worst_case > 0 or usd):
            await asyncio.to_thread(self.limit.settle, worst_case, usd or 0.0)
            settled = self._condition()
            async with settled:
                settled.notify_all()

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


def price_usd(price: dict[str, float], input_tokens: float, output_tokens: float) -> float:
    """What so many tokens cost at `price` (USD per million input and output tokens)."""
    return (input_tokens * price.get("input", 0.0) + output_tokens * price.get("output", 0.0)) / 1e6


def worst_case(prompt_chars: int, max_tokens: int | None, price: dict[str, float], fallback_tokens: int) -> float:
    """The most a call may cost: its prompt at CHARS_PER_TOKEN_AT_MOST, all of `max_tokens` (else `fallback_tokens`)
    as output."""
    return price_usd(price, prompt_chars / CHARS_PER_TOKEN_AT_MOST, max_tokens or fallback_tokens)
