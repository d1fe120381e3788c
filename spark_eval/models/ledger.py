"""What a run's paid model calls cost, as they return, and a limit a call must pass before it is sent.

Every model of a run's pool charges one `Ledger`. A budget (pipeline/budget.py) sets `Ledger.limit`: before a call
goes out, its worst case (`Ledger.worst_case`: the prompt at 3 characters per token, the whole `max_tokens` as
output, at the model's prices) is reserved, and a call whose reservation would take the spend past the cap is
refused with `BudgetExhausted`; the calls already sent finish and settle at their real cost.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from spark_eval.models.base import ModelCallError

CHARS_PER_TOKEN_AT_MOST = 3  # prompts run about 3.5-4 characters a token; 3 errs on the side of the cap


class BudgetExhausted(ModelCallError):
    """A call the budget refused: sent, it could take the spend past `budget.usd`. Not an outage: the record it was
    for is not written, and a resume with a higher cap makes it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 0)


class Ledger:
    """USD spent by a run's model calls (cache hits cost nothing), the worst cases of the calls in flight, and the
    limit (set by a budget) on them: `limit(reserved)` says whether calls whose worst cases add up to `reserved` USD
    may be in flight. A call that does not fit waits for calls in flight to settle; one that does not fit with
    nothing in flight is refused."""

    def __init__(self) -> None:
        self.usd = 0.0
        self.calls = 0
        self.reserved = 0.0
        self.limit: Callable[[float], bool] | None = None
        self._waiting = 0  # calls waiting for others to settle (the event loop's: one thread, checks never interleave)
        self._settled: tuple[asyncio.AbstractEventLoop, asyncio.Condition] | None = None

    async def reserve(self, name: str, worst_case: float) -> None:
        """Before a call: hold its worst case (waiting for calls in flight to settle), or BudgetExhausted."""
        while self.limit is not None and not self.limit(self.reserved + worst_case):
            if self.reserved <= 0:
                raise BudgetExhausted(f"{name}: this call could take the spend past budget.usd (worst case "
                                      f"${worst_case:.4f}, ${self.usd:.4f} spent)")
            settled = self._condition()
            self._waiting += 1
            try:
                async with settled:  # no await between the check above and the wait: no settle is missed
                    await settled.wait()
            finally:
                self._waiting -= 1
        self.reserved += worst_case

    async def settle(self, worst_case: float, usd: float | None) -> None:
        """After a call: its reservation released, its real cost (None: it failed) charged."""
        self.reserved = max(0.0, self.reserved - worst_case)
        if usd is not None:
            self.usd += usd
            self.calls += 1
        if self._waiting:
            settled = self._condition()
            async with settled:
                settled.notify_all()

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
