"""The estimate behind `dry_run=true` and scripts/estimate_cost.py: the model calls a run would make, their
tokens, cost and API time, and which of them the response cache already answers.

Each component says what it calls for a problem (`planned_calls`: the coder, the memory's agent and learner, each
judge), with the tokens it assumes: prompts counted at 4 characters per token on the prompts the run would send,
a reply at the component's own assumption; a reasoning model (`models.calls.reasons`) adds REASONING_TOKENS. Where
a prompt holds a recommendation or code not yet written, DS-1000's reference solution stands in for it. Only
requests known before the run (the coder's without advice) can be looked up in the response cache; the others are
counted as calls. API time assumes each remote provider (`remote`, a class attribute) streams 60 output tokens/s
per request at the model's `concurrency`. In-process models are compute-bound: a model config's `speed` (prompt
and output tokens/s, measured by bench/bench_local_model.py) gives their compute time, one call after another
(they compute one at a time); without it (vLLM) none is counted. Grading is not counted (about a second a problem,
alongside the model).
"""
from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from spark_eval.data.base import Benchmark
from spark_eval.models.cache import held_keys
from spark_eval.models.calls import Call, class_of, reasons
from spark_eval.models.coder import ChatCoder, coder_class
from spark_eval.models.ledger import price_usd
from spark_eval.records import Recommendation
from spark_eval.types import Problem

log = logging.getLogger(__name__)

REASONING_TOKENS = 1500  # extra output of reasoning models (GPT-5-Codex, Gemini 2.5 Pro) per call
TOKENS_PER_S = 60.0
ROLES = ("coder", "agent", "learner", "judge")


@dataclass
class Tally:
    """Calls of one component (or all), those answered by the cache apart; tokens, cost and time of the rest."""

    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    api_s: float = 0.0
    compute_s: float = 0.0
    """In-process models' time (their `speed`)."""

    def add(self, other: "Tally") -> None:
        for name in ("calls", "cached", "input_tokens", "output_tokens", "cost_usd", "api_s", "compute_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def total_of(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def record_calls(cfg: Any, benchmark: Benchmark, problem: Problem, coder: ChatCoder | None,
                 repeat: int = 0) -> list[Call]:
    """The calls one record makes, as its components say: the memory's (the agent's plan and advice), the coder's
    answer (with its cache key when `coder`, built, can tell it and no advice goes into the request), every
    judge's verdicts. A gated memory (`memory.gate`) adds the coder's draft without memory and the scoring of that
    draft (its prompt and draft read, nothing generated), and is counted as speaking: an upper bound. One that
    reads the draft (`memory.retrieval.draft_apis`) adds the draft."""
    memory = class_of(cfg.memory)
    advice = Recommendation(text=problem.reference_code * 2) if memory.advises else None
    planned = coder_class(class_of(cfg.model)).planned_calls

    def unadvised() -> list[Call]:  # a request without advice is known before the run: its key, once `coder` is built
        calls = planned(cfg.model, benchmark, problem, None)
        return calls if coder is None else [replace(c, key=coder.request_key(problem, None, repeat)) for c in calls]

    answer = planned(cfg.model, benchmark, problem, advice) if advice is not None else unadvised()
    gate, reads_draft = cfg.memory.get("gate"), (cfg.memory.get("retrieval") or {}).get("draft_apis")
    draft = unadvised() if advice is not None and (gate or reads_draft) else []
    score = [replace(call, input_tokens=call.input_tokens + call.output_tokens, output_tokens=0, key=None)
             for call in draft] if gate else []
    calls = memory.planned_calls(cfg.memory, problem) + draft + score + answer
    for entry in cfg.judge.panel:
        calls += class_of(entry).planned_calls(entry.model, problem, advice, cfg.judge.repeats)
    return calls


def learning_calls(cfg: Any, benchmark: Benchmark, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
    """The learner's calls for the records to make (a problem each), by round, as the memory says."""
    return class_of(cfg.memory).planned_learning(cfg.memory, benchmark, rounds)


def tally(calls: Sequence[Call]) -> dict[str, Tally]:
    """Per role; a call whose key the response cache holds, or an earlier call of the plan makes, is cached."""
    cached = cached_keys(calls)
    seen: set[str] = set()
    out = {name: Tally() for name in ROLES}
    for call in calls:
        t = out[call.role]
        t.calls += call.count
        if call.key is not None and (call.key in cached or call.key in seen):
            t.cached += call.count
            continue
        if call.key is not None and call.model.get("cache_path"):
            seen.add(call.key)  # a later call with this key is answered by the cache this one fills
        n_out = call.output_tokens + (REASONING_TOKENS if reasons(call.model) else 0)
        t.input_tokens += call.count * call.input_tokens
        t.output_tokens += call.count * n_out
        t.cost_usd += call.count * price_usd(call.model.get("price") or {}, call.input_tokens, n_out)
        if class_of(call.model).remote:
            t.api_s += call.count * n_out / TOKENS_PER_S / max(1, int(call.model.get("concurrency") or 1))
        t.compute_s += call.count * compute_s(call.model, call.input_tokens, n_out)
    return out


def compute_s(model: Any, input_tokens: int, output_tokens: int) -> float:
    """An in-process model's seconds for one call at its `speed`; 0 for a model without one."""
    speed = model.get("speed")
    if not speed:
        return 0.0
    return input_tokens / float(speed.prompt_tok_s) + output_tokens / float(speed.output_tok_s)


def cached_keys(calls: Sequence[Call]) -> set[str]:
    """Which of the calls' keys their models' response caches hold, read without writing."""
    by_cache: dict[str, set[str]] = defaultdict(set)
    for call in calls:
        if call.key is not None and call.model.get("cache_path"):
            by_cache[str(call.model.cache_path)].add(call.key)
    found: set[str] = set()
    for path, keys in by_cache.items():
        try:
            found |= held_keys(path, keys)
        except sqlite3.Error as e:
            log.warning("response cache %s not readable (%s); its calls are counted as calls", path, e)
    return found
