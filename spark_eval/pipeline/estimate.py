"""The estimate behind `dry_run=true` and scripts/estimate_cost.py: the model calls a run would make, their
tokens, cost and API time, and which of them the response cache already answers.

Tokens are counted on the prompts the run would send, at 4 characters per token; output tokens per call are
the assumptions in OUTPUT_TOKENS (reasoning models add REASONING_TOKENS). Where a prompt holds a recommendation
or code not yet written, DS-1000's reference solution stands in for it. Only requests known before the run (the
coder's without memory) can be looked up in the response cache; the others are counted as calls. API time
assumes each provider streams 60 output tokens/s per request at the model's `concurrency`. In-process models are
compute-bound: a model config's `speed` (prompt and output tokens/s, measured by bench/bench_local_model.py) gives
their compute time, one call after another (they compute one at a time); without it (vLLM) none is counted.
Grading is not counted (about a second a problem, alongside the model).
"""
from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from spark_eval.data.base import Benchmark
from spark_eval.judge.helpfulness import helpfulness_messages
from spark_eval.judge.quality import quality_messages
from spark_eval.memory.agent import plan_messages
from spark_eval.models.cache import held_keys
from spark_eval.models.coder import ChatCoder
from spark_eval.models.ledger import price_usd
from spark_eval.records import Recommendation
from spark_eval.types import Problem

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
OUTPUT_TOKENS = {"coder": 300, "plan": 150, "advice": 350, "attempt": 300, "hints": 400, "quality": 350,
                 "helpfulness": 450}
REASONING_TOKENS = 1500  # extra output of reasoning models (GPT-5-Codex, Gemini 2.5 Pro) per call
ADVICE_CONTEXT_TOKENS = 1800  # the agent's retrieved items (8 items x ~700 characters) added to its prompt
TOKENS_PER_S = 60.0
TRACE_TOKENS = 700  # one attempt as the learner sees it (problem excerpt, advice, code, feedback)
COMPONENTS = ("coder", "agent", "learner", "judge")
REMOTE_MODELS = ("OpenAIModel", "AnthropicModel")  # API time; in-process models (vLLM, llama.cpp) are compute-bound


@dataclass(frozen=True)
class Call:
    """One model call a run would make."""

    model: Any
    """The model's config."""
    component: str
    input_tokens: int
    output_tokens: int
    key: str | None = None
    """The response cache's key, for a request known before the run."""


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


def tokens(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN


def record_calls(cfg: Any, benchmark: Benchmark, problem: Problem, coder: ChatCoder | None,
                 repeat: int = 0) -> list[Call]:
    """The calls one record makes: the agent's plan and advice, the coder's answer, every judge's verdicts."""
    memory = cfg.memory.name != "none"
    advice = Recommendation(text=problem.reference_code * 2) if memory else None
    calls = []
    if cfg.model.name != "reference" and "Answers" not in str(cfg.model.get("_target_", "")):
        key = None
        if coder is not None and not memory and hasattr(coder.model, "request_key"):
            key = coder.model.request_key(*coder.request(problem, None, repeat))
        calls.append(Call(cfg.model, "coder", tokens(benchmark.coder_messages(problem, advice)),
                          OUTPUT_TOKENS["coder"], key))
    if memory and str(cfg.memory._target_).endswith(".AgentMemory"):
        plan = tokens(plan_messages(problem.prompt))
        calls.append(Call(cfg.memory.agent_model, "agent", plan, OUTPUT_TOKENS["plan"]))
        calls.append(Call(cfg.memory.agent_model, "agent", plan + ADVICE_CONTEXT_TOKENS, OUTPUT_TOKENS["advice"]))
    for entry in cfg.judge.panel:
        kind = str(entry._target_).rsplit(".", 1)[-1]
        if kind == "QualityJudge":
            calls += [Call(entry.model, "judge", tokens(quality_messages(problem, problem.reference_code)),
                           OUTPUT_TOKENS["quality"])] * cfg.judge.repeats
        elif advice is not None:
            calls += [Call(entry.model, "judge", tokens(helpfulness_messages(problem, advice)),
                           OUTPUT_TOKENS["helpfulness"])] * cfg.judge.repeats
    return calls


def learner_calls(cfg: Any, benchmark: Benchmark, problem: Problem, records: int) -> list[Call]:
    """The learner's calls a problem with `records` records to run brings: a share of a curation call per record
    learned online, or the paper's synthetic attempt and hints before the stream."""
    if cfg.memory.name == "none":
        return []
    experience = cfg.memory.get("experience")
    if experience == "online" and "insights" in cfg.memory.sources:
        share = records / cfg.memory.learning.traces_per_call  # one learner call per few traces
        return [Call(cfg.memory.learner_model, "learner", records * TRACE_TOKENS, int(share * OUTPUT_TOKENS["hints"]))]
    if experience == "paper_synthetic":
        n = tokens(benchmark.coder_messages(problem, None))
        hints_in = n + OUTPUT_TOKENS["attempt"] + len(problem.reference_code) // CHARS_PER_TOKEN
        return [Call(cfg.memory.learner_model, "learner", n, OUTPUT_TOKENS["attempt"]),
                Call(cfg.memory.learner_model, "learner", hints_in, OUTPUT_TOKENS["hints"])]
    return []


def is_reasoning(model: Any) -> bool:
    return bool(model.get("reasoning_effort") or (model.get("params") or {}).get("reasoning_effort")
                or "gemini-2.5" in str(model.get("model")))


def tally(calls: Sequence[Call]) -> dict[str, Tally]:
    """Per component; a call whose key the response cache holds, or an earlier call of the plan makes, is cached."""
    cached = cached_keys(calls)
    seen: set[str] = set()
    out = {name: Tally() for name in COMPONENTS}
    for call in calls:
        t = out[call.component]
        t.calls += 1
        if call.key is not None and (call.key in cached or call.key in seen):
            t.cached += 1
            continue
        if call.key is not None and call.model.get("cache_path"):
            seen.add(call.key)  # a later call with this key is answered by the cache this one fills
        n_out = call.output_tokens + (REASONING_TOKENS if is_reasoning(call.model) else 0)
        t.input_tokens += call.input_tokens
        t.output_tokens += n_out
        t.cost_usd += price_usd(call.model.get("price") or {}, call.input_tokens, n_out)
        if str(call.model.get("_target_")).rsplit(".", 1)[-1] in REMOTE_MODELS:
            t.api_s += n_out / TOKENS_PER_S / max(1, int(call.model.get("concurrency") or 1))
        t.compute_s += compute_s(call.model, call.input_tokens, n_out)
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
