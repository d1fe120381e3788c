"""A scripted ChatModel for tests: answers with the given replies in turn and keeps what it was sent."""
from __future__ import annotations

import asyncio
import os
from typing import Any

from spark_eval.models.base import ChatModel, GenerationParams, ModelCallError
from spark_eval.records import Completion


class ScriptedModel(ChatModel):
    """Replies in order (the last one repeats); a reply `!fail` raises ModelCallError like a dead provider.
    With `calls_log`, each call also appends a line to that file (calls across processes and runs); with
    `fail_while`, every call fails while that file exists (an outage that a test can end between runs); with
    `delay_s`, each call takes that long (a job slow enough to be killed in the middle)."""

    remote = False
    reasoning = False
    default_temperature = 0.0

    def __init__(self, name: str = "scripted", replies: list[str] | tuple[str, ...] = ("{}",),
                 calls_log: str | None = None, fail_while: str | None = None, delay_s: float = 0.0,
                 **_: Any) -> None:
        self.name = name
        self.replies = list(replies)
        self.calls_log = calls_log
        self.fail_while = fail_while
        self.delay_s = delay_s
        self.sent: list[list[dict]] = []
        self.params: list[GenerationParams] = []

    def default_params(self, **overrides: Any) -> GenerationParams:
        return GenerationParams(**overrides)

    async def complete(self, messages: list[dict], params: GenerationParams) -> Completion:
        self.sent.append(messages)
        self.params.append(params)
        if self.calls_log:
            with open(self.calls_log, "a") as f:
                f.write(self.name + "\n")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_while and os.path.exists(self.fail_while):
            raise ModelCallError("scripted outage", attempts=5)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply == "!fail":
            raise ModelCallError("scripted failure", attempts=3)
        return Completion(text=reply, input_tokens=10, output_tokens=5, attempts=1)
