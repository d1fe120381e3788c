"""Structured replies: ask a ChatModel for JSON, parse it whether bare, fenced or wrapped in prose, say
exactly what is wrong if not, and retry once quoting that (judges, the retrieval agent, the learner)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from spark_eval.models.base import ChatModel, Message
from spark_eval.records import Usage

T = TypeVar("T")

RETRY_VERSION = "retry-1"
"""Bump when RETRY_PROMPT changes: it is in the versions of every run whose agent, learner or judges ask for JSON."""
RETRY_PROMPT = (
    "Your reply could not be used: {error}. Reply again with only the JSON object the instructions ask for."
)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """The reply is not the JSON that was asked for; the message is shown to the model on its retry."""


@dataclass
class Reply(Generic[T]):
    """The outcome of `ask_json`: the interpreted value, or None with the reason; the last raw reply."""

    value: T | None = None
    raw: str = ""
    error: str | None = None
    usage: Usage = Usage()


async def ask_json(
    model: ChatModel,
    messages: list[Message],
    interpret: Callable[[dict[str, Any]], T],
    schema: dict[str, Any],
    max_tokens: int,
    repeat: int = 0,
) -> Reply[T]:
    """Ask for JSON matching `schema`; `interpret` turns it into a value or raises ParseError. One retry
    quotes the parse error; a second bad reply gives a Reply without value. A call that fails after all its
    retries (an outage, not a reply) raises ModelCallError: the caller's record is incomplete, not advice-less."""
    params = model.default_params(json_schema=schema, max_tokens=max_tokens, repeat=repeat)
    reply: Reply[T] = Reply()
    for _ in range(2):
        completion = await model.complete(messages, params)
        reply.usage += Usage.of(completion)
        reply.raw = completion.text
        try:
            reply.value, reply.error = interpret(extract_json(reply.raw)), None
            return reply
        except ParseError as e:
            reply.error = str(e)
            messages = [*messages, {"role": "assistant", "content": reply.raw},
                        {"role": "user", "content": RETRY_PROMPT.format(error=reply.error)}]
    return reply


async def ask_choices(model: ChatModel, messages: list[Message], prefix: str, options: list[str],
                      repeat: int = 0) -> Reply[dict[str, float]]:
    """How likely each option is to start the reply after `prefix` (the reply's fixed start, e.g. `{"score": `), from a
    model that reads it off its logits (`model.choice_probabilities`); nothing is sampled, so nothing can be cut
    off. The reply is JSON like any other and read by the same parser."""
    params = model.default_params(max_tokens=1, repeat=repeat, extra={"choices": {"prefix": prefix, "options": options}})
    reply: Reply[dict[str, float]] = Reply()
    completion = await model.complete(messages, params)
    reply.usage += Usage.of(completion)
    reply.raw = completion.text
    try:
        found = extract_json(reply.raw).get("probabilities")
        if not isinstance(found, dict) or set(found) != set(options):
            raise ParseError(f'"probabilities" must give each of {options}')
        reply.value = {o: float(found[o]) for o in options}
    except ParseError as e:
        reply.error = str(e)
    return reply


async def ask_score(model: ChatModel, messages: list[Message], reply_text: str) -> Reply[list[float]]:
    """The log-probability of each token of `reply_text` as the model's reply to `messages`, from a model that reads
    it off its logits (`model.choice_probabilities`): how sure the model is of a reply it gave (or was handed)."""
    params = model.default_params(max_tokens=1, extra={"score": {"reply": reply_text}})
    reply: Reply[list[float]] = Reply()  # value: the reply's tokens' log-probabilities
    completion = await model.complete(messages, params)
    reply.usage += Usage.of(completion)
    reply.raw = completion.text
    try:
        found = extract_json(reply.raw).get("token_logprobs")
        if not isinstance(found, list):
            raise ParseError('"token_logprobs" must be a list')
        reply.value = [float(v) for v in found]
    except (ParseError, TypeError, ValueError) as e:
        reply.error = str(e)
    return reply


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in `text`: the whole text, a fenced block, or the outermost braces."""
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:  # raw newlines and tabs inside strings are accepted: small models write them
            value = json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    if not text.strip():
        raise ParseError("the reply is empty")
    if start >= 0 and end <= start:
        raise ParseError("the JSON object is cut off (no closing brace)")
    raise ParseError("the reply holds no JSON object")


def integer_in(value: Any, low: int, high: int, field: str) -> int:
    """`value` as an int in [low, high] (accepting 4, 4.0 and "4"), or a ParseError naming the field."""
    try:
        number = float(value)
        whole = number == int(number)  # nan and inf raise here
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not low <= number <= high:
        raise ParseError(f'"{field}" must be an integer from {low} to {high}, got {value!r}')
    return int(number)


def text_field(reply: dict[str, Any], field: str) -> str:
    value = reply.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f'"{field}" must be a non-empty string')
    return value.strip()
