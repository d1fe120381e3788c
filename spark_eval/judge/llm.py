"""What both judges share: ask a ChatModel for a verdict, retry once quoting the parse error, else record missing.

A verdict is either sampled (a JSON reply with the judge's reasoning, read by the one parser) or, when the model
can read option probabilities off its logits (`model.choice_probabilities`, the embedded models), the expected
score over the options the reply could start with (G-Eval's probability-weighted score, Liu et al., 2023):
a continuous score, no reply to cut off, no sampling noise. `scoring` chooses; the version says which it was.
A judge call that fails after its retries raises ModelCallError: the record is incomplete and retried on resume.
"""
from __future__ import annotations

import abc
from typing import Any

from spark_eval.models.base import ChatModel, Message, ModelConfigError
from spark_eval.models.calls import Call, tokens
from spark_eval.models.structured import ask_choices, ask_json
from spark_eval.types import Problem
from spark_eval.records import Judgment, Recommendation

SCORINGS = ("auto", "expected", "sampled")


class LLMJudge(abc.ABC):
    """A judge backed by a ChatModel. Subclasses build the (blind) prompt and interpret the reply.

    Args:
        model: the judge's ChatModel.
        max_tokens: room for a sampled reply.
        scoring: `expected` (probability-weighted score; needs `model.choice_probabilities`), `sampled` (a JSON
            reply with reasons), or `auto` (expected when the model can, else sampled).
    """

    kind = ""
    version = ""
    schema: dict[str, Any] = {}
    choice_prefix = ""
    """The start of a reply whose next token is the verdict (expected scoring)."""
    choice_scores: dict[str, float] = {}
    """Option -> score, for expected scoring."""
    output_tokens = 0
    """What the dry run assumes a verdict takes."""

    def __init__(self, model: ChatModel, max_tokens: int = 768, scoring: str = "auto") -> None:
        if scoring not in SCORINGS:
            raise ModelConfigError(f"judge scoring={scoring} is unknown; choose one of: {', '.join(SCORINGS)}")
        able = bool(getattr(model, "choice_probabilities", False))
        if scoring == "expected" and not able:
            raise ModelConfigError(f"{model.name} cannot give option probabilities; use scoring=sampled for its judge")
        self.model = model
        self.max_tokens = max_tokens
        self.expected = able if scoring == "auto" else scoring == "expected"
        self.version = f"{type(self).version}-expected" if self.expected else type(self).version
        self.name = f"{self.kind}/{model.name}"

    @classmethod
    def planned_calls(cls, model: Any, problem: Problem, recommendation: Recommendation | None,
                      repeats: int) -> list[Call]:
        """The calls `grade` makes `repeats` times for `problem`, with the model configured as `model`
        (`recommendation` stands in for the advice, the reference solution for the code)."""
        messages = cls.planned_messages(problem, recommendation)
        return [] if messages is None else [Call("judge", model, tokens(messages), cls.output_tokens, repeats)]

    @classmethod
    @abc.abstractmethod
    def planned_messages(cls, problem: Problem, recommendation: Recommendation | None) -> list[Message] | None:
        """The prompt the dry run counts: as `messages` gives it, or None when there would be nothing to judge."""

    @abc.abstractmethod
    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message] | None:
        """The prompt (its reply format as `self.expected` asks), or None when there is nothing to judge."""

    @abc.abstractmethod
    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Judgment fields (score, band, criteria, rationale) from a sampled reply; ParseError if unusable."""

    def interpret_choices(self, probabilities: dict[str, float]) -> dict[str, Any]:
        """Judgment fields from the options' probabilities: the expected score, the probabilities as criteria."""
        score = sum(p * self.choice_scores[o] for o, p in probabilities.items())
        return {"score": round(score, 4), "criteria": {"probabilities": probabilities}}

    async def grade(
        self, problem: Problem, code: str, recommendation: Recommendation | None, repeat: int = 0
    ) -> Judgment | None:
        messages = self.messages(problem, code, recommendation)
        return None if messages is None else await self.verdict(messages, repeat)

    async def verdict(self, messages: list[Message], repeat: int = 0) -> Judgment:
        """The verdict on the prompt `messages`, scored as `self.expected` says; its score None (with the raw reply
        and the reason) when the reply stayed unusable."""
        if self.expected:
            chosen = await ask_choices(self.model, messages, self.choice_prefix, list(self.choice_scores), repeat)
            fields = self.interpret_choices(chosen.value) if chosen.value is not None else {}
            return Judgment(judge=self.name, kind=self.kind, raw=chosen.raw, parse_error=chosen.error,
                            version=self.version, repeat=repeat, usage=chosen.usage, **fields)
        reply = await ask_json(self.model, messages, self.interpret, self.schema, self.max_tokens, repeat)
        return Judgment(judge=self.name, kind=self.kind, raw=reply.raw, parse_error=reply.error,
                        version=self.version, repeat=repeat, usage=reply.usage, **(reply.value or {}))
