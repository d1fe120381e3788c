"""Parse a judge's JSON reply, whether bare, fenced or wrapped in prose; say exactly what is wrong if not."""
from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """The reply is not the JSON the rubric asks for; the message is shown to the judge on its retry."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in `text`: the whole text, a fenced block, or the outermost braces."""
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
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
    except (TypeError, ValueError):
        raise ParseError(f'"{field}" must be an integer from {low} to {high}, got {value!r}') from None
    if number != int(number) or not low <= number <= high:
        raise ParseError(f'"{field}" must be an integer from {low} to {high}, got {value!r}')
    return int(number)


def text_field(reply: dict[str, Any], field: str) -> str:
    value = reply.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f'"{field}" must be a non-empty string')
    return value.strip()
