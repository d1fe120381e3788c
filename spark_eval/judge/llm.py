"""What both judges share: ask a ChatModel for JSON, retry once quoting the parse error, else record missing."""
from __future__ import annotations

import abc
from typing import Any

from spark_eval.judge.parsing import ParseError, extract_json
from spark_eval.models.base import ChatModel, Message, ModelCallError
from spark_eval.types import Completion, Judgment, Problem, Recommendation

RETRY_PROMPT = (
    "Your reply could not be used: {error}. Reply again with only the JSON object the instructions ask for."
)


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
        params = self.model.default_params(json_schema=self.schema, max_tokens=self.max_tokens, repeat=repeat)
        usage: dict[str, Any] = {}
        raw, error = "", None
        for _ in range(2):  # the first answer, then one retry that quotes the parse error
            try:
                completion = await self.model.complete(messages, params)
            except ModelCallError as e:
                return self._missing(repeat, usage, raw, f"call failed: {e}")
            _add_usage(usage, completion)
            raw = completion.text
            try:
                return Judgment(judge=self.name, kind=self.kind, raw=raw, version=self.version, repeat=repeat,
                                usage=usage, **self.interpret(extract_json(raw)))
            except ParseError as e:
                error = str(e)
                messages = [*messages, {"role": "assistant", "content": raw},
                            {"role": "user", "content": RETRY_PROMPT.format(error=error)}]
        return self._missing(repeat, usage, raw, error)

    def _missing(self, repeat: int, usage: dict[str, Any], raw: str, error: str | None) -> Judgment:
        return Judgment(judge=self.name, kind=self.kind, raw=raw, parse_error=error, version=self.version,
                        repeat=repeat, usage=usage)


def _add_usage(usage: dict[str, Any], completion: Completion) -> None:
    usage["calls"] = usage.get("calls", 0) + (0 if completion.cached else 1)
    usage["cached"] = usage.get("cached", 0) + int(completion.cached)
    for field in ("input_tokens", "output_tokens", "cost_usd", "latency_s", "attempts"):
        if not completion.cached or field == "attempts":
            usage[field] = usage.get(field, 0) + getattr(completion, field)
