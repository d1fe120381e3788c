"""What a model-calling component says it will call for a problem, before anything runs: the dry run's counts
(pipeline/estimate.py adds up tokens, cost and time from them)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from hydra.utils import get_class

from spark_eval.types import Message

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Call:
    """`count` alike model calls one component expects to make: its role, the model's config, each call's tokens."""

    role: str
    """`coder`, `agent`, `learner` or `judge`: a row of the dry run's table."""
    model: Any
    """The model's config (a `_target_` node)."""
    input_tokens: int
    output_tokens: int
    """What the component assumes a reply takes (a reasoning model's thinking is added by the estimate)."""
    count: int = 1
    key: str | None = None
    """The response cache's key, for a request known before the run (then `count` is 1)."""


def tokens(messages: list[Message]) -> int:
    """The prompt's tokens, at CHARS_PER_TOKEN characters a token."""
    return sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN


@lru_cache(maxsize=None)
def _class(target: str) -> type:
    return get_class(target)


def class_of(node: Mapping[str, Any]) -> type:
    """The class a config node's `_target_` names (imported once)."""
    return _class(str(node["_target_"]))


def reasons(model: Mapping[str, Any]) -> bool:
    """Whether a model thinks before it answers: the model config's `reasoning` when set, else its provider's
    (`reasoning`, a class attribute) or a `reasoning_effort` in its parameters."""
    stated = model.get("reasoning")
    if stated is not None:
        return bool(stated)
    return bool(class_of(model).reasoning or (model.get("params") or {}).get("reasoning_effort"))
