"""What both judges share: ask a ChatModel for JSON, retry once quoting the parse error, else record missing.
A judge call that fails after its retries raises ModelCallError: the record is incomplete and retried on resume."""
from __future__ import annotations

import abc
from typing import Any

from spark_eval.models.base import ChatModel, Message
from spark_eval.models.structured import ask_json
from spark_eval.types import Judgment, Problem, Recommendation


class LLMJudge(abc.ABC):
    """A judge backed by a ChatModel. Subclasses build the (blind) prompt and interpret the JSON.

    Args:
        model: the judge's ChatModel.
        max_tokens: room for the reasoning and the JSON.
    """

    kind = ""
    version = ""
    schema: dict[str, Any] = {}

    def __init__(self, model: ChatModel, max_tokens: int = 768) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.name = f"{self.kind}/{model.name}"

    @abc.abstractmethod
    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message] | None:
        """The prompt, or None when there is nothing to judge."""

    @abc.abstractmethod
    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Judgment fields (score, band, criteria, rationale) from the parsed reply; ParseError if unusable."""

    async def grade(
        self, problem: Problem, code: str, recommendation: Recommendation | None, repeat: int = 0
    ) -> Judgment | None:
        messages = self.messages(problem, code, recommendation)
        if messages is None:
            return None
        reply = await ask_json(self.model, messages, self.interpret, self.schema, self.max_tokens, repeat)
        return Judgment(judge=self.name, kind=self.kind, raw=reply.raw, parse_error=reply.error,
                        version=self.version, repeat=repeat, usage=reply.usage, **(reply.value or {}))
