"""`dry_run=true`: what a run would do, from its config alone. No model is called and nothing is written.

Per job: the problems and records to run and those already done (a resume skips them), the model calls each
component would make (coder, agent, learner, judge) with those the response cache already answers apart, their
tokens, cost and API time, and what the job needs (keys, weights, GPUs, the grading environment, the
documentation KB). A multirun adds the total over its jobs (`PlanTotal`, a Hydra callback).

Tokens are counted on the prompts the run would send, at 4 characters per token; output tokens per call are
the assumptions in OUTPUT_TOKENS (reasoning models add REASONING_TOKENS). Where a prompt holds a recommendation
or code not yet written, DS-1000's reference solution stands in for it. Only requests known before the run (the
coder's without memory) can be looked up in the response cache; the others are counted as calls. API time
assumes each provider streams 60 output tokens/s per request at the model's `concurrency`; in-process models (vLLM,
llama.cpp) are compute-bound and count no API time.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.config import IDENTITY_RENAMED
from spark_eval.data import build_benchmark
from spark_eval.data.base import Benchmark
from spark_eval.errors import UserError
from spark_eval.judge.helpfulness import helpfulness_messages
from spark_eval.judge.quality import quality_messages
from spark_eval.memory.agent import plan_messages
from spark_eval.memory.store import is_database_url, shown_url
from spark_eval.models.coder import ChatCoder
from spark_eval.pipeline.rundir import result_identity
from spark_eval.pipeline.runner import share_of, stream_order
from spark_eval.records import Recommendation, read_records, record_key
from spark_eval.types import Problem

log = logging.getLogger("spark_eval")

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

    def add(self, other: "Tally") -> None:
        for name in ("calls", "cached", "input_tokens", "output_tokens", "cost_usd", "api_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Plan:
    """One job's dry run."""

    job: str
    run_dir: str
    problems: int
    records: int
    done: int
    resume: str
    components: dict[str, Tally] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)

    @property
    def total(self) -> Tally:
        return total_of(self.components.values())

    def lines(self) -> list[str]:
        header = (f"dry run {self.job} -> {self.run_dir}: {self.problems} problems, {self.records} records: "
                  f"{self.records - self.done} to run, {self.done} done ({self.resume})")
        rows = [(name, tally) for name, tally in self.components.items() if tally.calls]
        return [header, *tally_lines(rows + [("total", self.total)]), *(f"  needs: {need}" for need in self.needs)]


def total_of(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def tally_lines(rows: Sequence[tuple[str, Tally]]) -> list[str]:
    lines = [f"  {'':<8}{'calls':>9}{'cached':>9}{'input tok':>12}{'output tok':>12}{'cost USD':>10}{'API h':>8}"]
    for name, t in rows:
        lines.append(f"  {name:<8}{t.calls:>9,}{t.cached:>9,}{t.input_tokens:>12,}{t.output_tokens:>12,}"
                     f"{t.cost_usd:>10.2f}{t.api_s / 3600:>8.2f}")
    return lines


def dry_run(cfg: DictConfig) -> Plan:
    """Log and return the plan of the job `cfg` describes."""
    plan = plan_run(cfg)
    log.info("%s", "\n".join(plan.lines()))
    return plan


def plan_run(cfg: DictConfig) -> Plan:
    benchmark = build_benchmark(cfg.dataset)
    problems = share_of(stream_order(benchmark.select(), cfg.pipeline.shuffle, cfg.seed), cfg.pipeline.share)
    run_dir = Path(cfg.run_dir or Path(cfg.paths.results) / cfg.experiment_name /
                   f"{cfg.model.name}__{cfg.memory.name}__s{cfg.seed}")  # the folder conf/hydra gives a run
    done = finished_keys(run_dir)
    models, needs = offline_models(cfg)
    coder = models.get("coder")
    coder = ChatCoder(coder, benchmark, cfg.seed) if coder is not None and hasattr(coder, "default_params") else None
    todo = [(p, e, r) for e in range(cfg.pipeline.epochs) for p in problems for r in range(cfg.pipeline.samples)
            if record_key(p.problem_id, e, r) not in done]
    calls = [c for p, _, r in todo for c in record_calls(cfg, benchmark, p, coder, r)]
    calls += [c for p in {p.problem_id: p for p, _, _ in todo}.values() for c in learner_calls(cfg, benchmark, p)]
    records = len(problems) * cfg.pipeline.epochs * cfg.pipeline.samples
    return Plan(job=f"{cfg.model.name}__{cfg.memory.name}__s{cfg.seed}", run_dir=str(run_dir),
                problems=len(problems), records=records, done=records - len(todo),
                resume=resume_state(cfg, run_dir), components=tally(calls), needs=needs + kb_needs(cfg))


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


def learner_calls(cfg: Any, benchmark: Benchmark, problem: Problem) -> list[Call]:
    """The learner's calls a problem brings: a share of a curation call per record learned online, or the paper's
    synthetic attempt and hints before the stream."""
    if cfg.memory.name == "none":
        return []
    experience = cfg.memory.get("experience")
    if experience == "online" and "insights" in cfg.memory.sources:
        records = cfg.pipeline.epochs * cfg.pipeline.samples
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
        if call.key is not None:
            seen.add(call.key)
        n_out = call.output_tokens + (REASONING_TOKENS if is_reasoning(call.model) else 0)
        price = call.model.get("price") or {}
        t.input_tokens += call.input_tokens
        t.output_tokens += n_out
        t.cost_usd += (call.input_tokens * price.get("input", 0.0) + n_out * price.get("output", 0.0)) / 1e6
        if str(call.model.get("_target_")).rsplit(".", 1)[-1] in REMOTE_MODELS:
            t.api_s += n_out / TOKENS_PER_S / max(1, int(call.model.get("concurrency") or 1))
    return out


def cached_keys(calls: Sequence[Call]) -> set[str]:
    """Which of the calls' keys their models' response caches hold, read without writing."""
    by_cache: dict[str, set[str]] = defaultdict(set)
    for call in calls:
        if call.key is not None and call.model.get("cache_path"):
            by_cache[str(call.model.cache_path)].add(call.key)
    found: set[str] = set()
    for path, keys in by_cache.items():
        if not Path(path).is_file():
            continue
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                ordered = sorted(keys)
                for start in range(0, len(ordered), 500):
                    chunk = ordered[start : start + 500]
                    rows = db.execute(f"SELECT key FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                    found.update(key for (key,) in rows)
        except sqlite3.Error as e:
            log.warning("response cache %s not readable (%s); its calls are counted as calls", path, e)
    return found


def finished_keys(run_dir: Path) -> set[str]:
    """Keys of the records an earlier attempt finished (those that ended in an error are retried)."""
    path = run_dir / "records.jsonl"
    if not path.is_file():
        return set()
    return {r.key for r in read_records(path, repair=False) if not r.error}


def resume_state(cfg: DictConfig, run_dir: Path) -> str:
    """`new run`, `resumes`, or why a resume would be refused (the config's part of the identity differs)."""
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        return "new run"
    try:
        before = json.loads(manifest.read_text()).get("identity", {})
    except (OSError, ValueError):
        return f"{manifest} unreadable: the run would stop"
    before = {IDENTITY_RENAMED.get(k, k): v for k, v in before.items()}
    now = result_identity(cfg)  # without the dataset hash and versions, which only the run itself computes
    if now.get("execution.isolation") == "auto":
        now.pop("execution.isolation")  # the run writes down what `auto` became on its machine
    changed = [k for k in sorted(now) if k and before.get(k) != now[k]]
    if changed:
        shown = "; ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed[:4])
        return f"resume refused, the config differs ({shown})"
    return "resumes"


def used_models(cfg: Any) -> dict[str, Any]:
    """The model configs a run would build, by role."""
    found = {}
    if cfg.model.name != "reference":
        found["coder"] = cfg.model
    if cfg.memory.name != "none":
        if str(cfg.memory._target_).endswith(".AgentMemory"):
            found["agent"] = cfg.memory.agent_model
        if cfg.memory.get("experience") in ("online", "paper_synthetic") and "insights" in cfg.memory.sources:
            found["learner"] = cfg.memory.learner_model
    for number, entry in enumerate(cfg.judge.panel):
        found[f"judge {number}"] = entry.model
    return found


def offline_models(cfg: Any) -> tuple[dict[str, Any], list[str]]:
    """The models built without their response cache (opening one creates its file), and what building them
    said is missing (keys, weights, packages); GPUs for vLLM."""
    models, needs, seen = {}, [], set()
    for role, node in used_models(cfg).items():
        settings = OmegaConf.to_container(node, resolve=True)
        if "tensor_parallel_size" in settings:
            needs.append(f"{settings['name']}: {settings['tensor_parallel_size']} GPUs (vLLM)")
        try:
            models[role] = instantiate({**settings, "cache_path": None} if "cache_path" in settings else settings)
        except Exception as e:
            cause = e.__cause__ if isinstance(e, InstantiationException) and e.__cause__ else e
            message = str(cause) if isinstance(cause, UserError) else f"{settings.get('name')}: {cause}"
            if message not in seen:
                seen.add(message)
                needs.append(message)
    return models, needs


def kb_needs(cfg: Any) -> list[str]:
    """The grading environment, and the documentation KB a memory with `docs` builds when it is not cached."""
    from spark_eval.memory.embed import embedder_name
    from spark_eval.memory.kb import kb_complete, kb_path

    python = Path(str(cfg.execution.python))
    if not python.is_file():
        return [f"grading environment {python}: missing (`make setup` builds it)"]
    found = []
    store = cfg.memory.get("store")
    if store and is_database_url(str(store)):
        found.append(f"the PostgreSQL store {shown_url(str(store))}")
    if cfg.memory.name == "none" or "docs" not in (cfg.memory.get("sources") or []):
        return found
    path = kb_path(cfg.memory.kb, embedder_name(cfg.memory.embedder))
    state = "ready" if kb_complete(path) else "built when the run starts (walks and embeds the documentation)"
    return found + [f"documentation KB {path.name}: {state}"]


class PlanTotal(Callback):
    """In a multirun with `dry_run=true`, the total over the jobs' plans (each job returns its Plan)."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if isinstance(getattr(job_return, "_return_value", None), Plan):
            self.plans.append(job_return._return_value)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.plans:
            log.info("%s", "\n".join(total_lines(self.plans)))


def total_lines(plans: Sequence[Plan]) -> list[str]:
    records = sum(p.records for p in plans)
    done = sum(p.done for p in plans)
    by_component = {name: total_of(p.components.get(name, Tally()) for p in plans) for name in COMPONENTS}
    rows = [(name, t) for name, t in by_component.items() if t.calls]
    needs = sorted({need for p in plans for need in p.needs})
    return [f"dry run total, {len(plans)} jobs: {records} records, {records - done} to run, {done} done",
            *tally_lines(rows + [("total", total_of(by_component.values()))]), *(f"  needs: {n}" for n in needs)]
