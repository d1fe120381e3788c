"""A memory's gate: before any advice is written, decide whether to speak at all.

Advice hurts a coder on the problems it already solves (the local study's flips), so a gated memory first lets the
coder draft its answer without memory, reads how sure the coder is of that draft, and stays silent when it is sure:
the draft is then the answer (at temperature 0 it is the no-memory answer itself, so silence costs nothing more).
Otherwise the memory advises as usual and the coder answers again with the advice.

`DraftGate`'s signal is read off the coder's logits (`ask_score`, so the coder must expose them:
`model.choice_probabilities`, the embedded models): the lowest log-probability among the draft's tokens
(`draft_min_logprob`, the default) or their mean (`draft_mean_logprob`). It speaks when the signal is below
`threshold`. The decision, with the signal's value, goes into the record (`Recommendation.abstained`,
`trace["gate"]`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from spark_eval.memory.base import MemoryConfigError
from spark_eval.models.structured import ask_score
from spark_eval.types import Problem

GATE_VERSION = "gate-1"
SIGNALS = ("draft_mean_logprob", "draft_min_logprob")


class DraftGate:
    """Speak when the coder's draft without memory is unsure: its `signal` (`SIGNALS`) below `threshold`.

    Args:
        signal: `draft_mean_logprob` (the mean of the draft's token log-probabilities) or `draft_min_logprob`
            (the lowest of them).
        threshold: the signal's value at and above which the memory stays silent.
    """

    def __init__(self, signal: str = "draft_min_logprob", threshold: float = -1.16553) -> None:
        if signal not in SIGNALS:
            raise MemoryConfigError(f"memory.gate.signal={signal!r} is unknown: use one of {', '.join(SIGNALS)}")
        self.signal = signal
        self.threshold = float(threshold)

    def describe(self) -> dict[str, Any]:
        return {"signal": self.signal, "threshold": self.threshold, "version": GATE_VERSION}

    def check(self, coder: Any) -> None:
        """A MemoryConfigError naming the fix when `coder` cannot be read this way."""
        if not getattr(getattr(coder, "model", None), "choice_probabilities", False):
            raise MemoryConfigError(
                f"memory.gate reads the coder's logits, which {getattr(coder, 'name', 'this coder')} does not expose: "
                "use an embedded coder (model=local) or set memory.gate=null")

    async def decide(self, coder: Any, problem: Problem, draft: str) -> dict[str, Any]:
        """`{"speaks", "signal", "value", "threshold", "version"}` for the coder's `draft` of `problem` (its answer
        without memory); a draft that cannot be scored (empty) is no evidence, so the memory speaks."""
        messages, _ = coder.request(problem, None)
        reply = await ask_score(coder.model, messages, draft) if draft.strip() else None
        logprobs = reply.value if reply is not None and reply.value else []
        value = None if not logprobs else float(np.mean(logprobs) if self.signal == "draft_mean_logprob"
                                                else np.min(logprobs))
        speaks = value is None or value < self.threshold
        return {"speaks": speaks, "signal": self.signal, "value": None if value is None else round(value, 5),
                "threshold": self.threshold, "version": GATE_VERSION}


def build_gate(settings: Any) -> DraftGate | None:
    """The gate `memory.gate` configures (`{signal, threshold}`), or None when it is null (the memory always speaks)."""
    if not settings:
        return None
    unknown = set(settings) - {"signal", "threshold"}
    if unknown:
        raise MemoryConfigError(f"memory.gate has unknown keys {sorted(unknown)}: it takes signal and threshold")
    return DraftGate(**dict(settings))
