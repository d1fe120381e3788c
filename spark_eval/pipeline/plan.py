"""`dry_run=true`: what a run would do, from its config alone. No model is called and nothing is written (but the
digest of a weights file of yours, kept in the weights cache so it is hashed once).

Per job: the problems and records to run and those already done (a resume skips them), the model calls each
component would make (coder, agent, learner, judge) with those the response cache already answers apart, their
tokens, cost and API time (`estimate.py`), and what the job needs (keys, weights, GPUs, the grading environment,
the documentation KB). A multirun adds the total over its jobs (`PlanTotal`, a Hydra callback) and, for each
comparison its jobs make (each memory of a model against the same model's `report.baseline`), the minimum
detectable effect its design will reach on pass@1 (`power_lines`): from a stated discordance and intra-family
correlation (`plan.discordance`, `plan.rho`), or from those measured on pilot runs (`plan.pilot=<run glob>`).
"""
from __future__ import annotations

import glob
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.data import build_benchmark
from spark_eval.errors import UserError
from spark_eval.memory.store.base import is_database_url, shown_url
from spark_eval.models.calls import Call, class_of
from spark_eval.models.coder import ChatCoder
from spark_eval.models.provider import ProviderModel
from spark_eval.pipeline.estimate import ROLES, Tally, learning_calls, record_calls, tally, total_of
from spark_eval.pipeline.rundir import identity_changes, result_identity, shown_changes
from spark_eval.pipeline.runner import share_of, stream_order
from spark_eval.pipeline.sweep import shown_path
from spark_eval.records import record_key
from spark_eval.records.run import RunFiles, holds_records
from spark_eval.stats.power import ALPHA, POWER, design_from_pilot, planned_mde

log = logging.getLogger("spark_eval")


@dataclass(frozen=True)
class Design:
    """What a comparison's planned MDE assumes: the discordance, the intra-family rho, and where they come from."""

    discordance: float
    rho: float
    source: str


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
    model: str = ""
    memory: str = ""
    baseline: str = "none"
    """`report.baseline`: the memory this job's memory is compared with (the same model's)."""
    units: tuple[tuple[int, str], ...] = ()
    """(problem id, origin family `Library/id`) of each problem the job runs: what its comparisons rest on."""
    design: Design | None = None
    """What the MDE of this job's comparison with its baseline assumes (None for the baseline itself)."""

    @property
    def total(self) -> Tally:
        return total_of(self.components.values())

    def lines(self) -> list[str]:
        header = (f"dry run {self.job} -> {self.run_dir}: {self.problems} problems, {self.records} records: "
                  f"{self.records - self.done} to run, {self.done} done ({self.resume})")
        rows = [(name, tally) for name, tally in self.components.items() if tally.calls]
        return [header, *tally_lines(rows + [("total", self.total)]), *(f"  needs: {need}" for need in self.needs)]


def tally_lines(rows: Sequence[tuple[str, Tally]]) -> list[str]:
    lines = [f"  {'':<8}{'calls':>9}{'cached':>9}{'input tok':>12}{'output tok':>12}{'cost USD':>10}{'API h':>8}"
             f"{'compute h':>11}"]
    for name, t in rows:
        lines.append(f"  {name:<8}{t.calls:>9,}{t.cached:>9,}{t.input_tokens:>12,}{t.output_tokens:>12,}"
                     f"{t.cost_usd:>10.2f}{t.api_s / 3600:>8.2f}{t.compute_s / 3600:>11.2f}")
    return lines


def dry_run(cfg: DictConfig) -> Plan:
    """Log and return the plan of the job `cfg` describes."""
    plan = plan_run(cfg)
    log.info("%s", "\n".join(plan.lines()))
    return plan


def plan_run(cfg: DictConfig) -> Plan:
    benchmark = build_benchmark(cfg.dataset)
    problems = share_of(stream_order(benchmark.select(), cfg.pipeline.shuffle, cfg.seed), cfg.pipeline.share)
    files = RunFiles(planned_run_dir(cfg))
    done = files.finished_keys()
    models, needs = offline_models(used_models(cfg, benchmark, problems[:1]))
    coder = models.get("coder")
    coder = ChatCoder(coder, benchmark, cfg.seed) if isinstance(coder, ProviderModel) else None
    calls = planned_calls(cfg, benchmark, problems, coder, done)
    records = len(problems) * cfg.pipeline.epochs * cfg.pipeline.samples
    to_run = sum(1 for _ in records_to_make(cfg, problems, done))
    return Plan(job=f"{cfg.model.name}__{cfg.memory.name}__s{cfg.seed}", run_dir=shown_path(files.path),
                problems=len(problems), records=records, done=records - to_run,
                resume=resume_state(cfg, files), components=tally(calls), needs=needs + kb_needs(cfg),
                model=cfg.model.name, memory=cfg.memory.name, baseline=cfg.report.baseline,
                units=tuple((p.problem_id, "/".join(map(str, p.origin_family))) for p in problems),
                design=None if cfg.memory.name == cfg.report.baseline else design(cfg))


def records_to_make(cfg: Any, problems: Sequence[Any], done: set[str]) -> Iterator[tuple[Any, int, int]]:
    """(problem, epoch, sample) of each record not finished, in the order a run makes them."""
    for epoch in range(cfg.pipeline.epochs):
        for p in problems:
            for r in range(cfg.pipeline.samples):
                if record_key(p.problem_id, epoch, r) not in done:
                    yield p, epoch, r


def planned_calls(cfg: Any, benchmark: Any, problems: Sequence[Any], coder: ChatCoder | None,
                  done: set[str]) -> list[Call]:
    """Every call the records not in `done` bring: each record's, then the learning of each round of them (the
    round of `pipeline.round_size` problems a learning memory learns from at once)."""
    todo = list(records_to_make(cfg, problems, done))
    calls = [c for p, _, r in todo for c in record_calls(cfg, benchmark, p, coder, r)]
    place = {p.problem_id: i for i, p in enumerate(problems)}
    rounds: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for p, epoch, _ in todo:
        rounds[(epoch, place[p.problem_id] // cfg.pipeline.round_size)].append(p)
    return calls + learning_calls(cfg, benchmark, list(rounds.values()))


def planned_run_dir(cfg: DictConfig) -> Path:
    """The run directory the real run would use: Hydra's run folder (or this job's folder of a sweep) resolved with
    `dry_run=false`, so `hydra.run.dir`, `hydra.sweep.dir` and `run_dir` count as they would; outside a Hydra
    command, `run_dir` or the folder conf/hydra gives a run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return Path(cfg.run_dir or Path(cfg.paths.results) / cfg.experiment_name /
                    f"{cfg.model.name}__{cfg.memory.name}__s{cfg.seed}")
    hydra = HydraConfig.get()
    real = OmegaConf.create({**OmegaConf.to_container(cfg), "dry_run": False,
                             "hydra": OmegaConf.to_container(hydra)})  # unresolved: interpolations see dry_run
    if hydra.mode == RunMode.MULTIRUN:
        return Path(real.hydra.sweep.dir) / str(real.hydra.sweep.subdir)
    return Path(real.hydra.run.dir)


def resume_state(cfg: DictConfig, files: RunFiles) -> str:
    """`new run`, `resumes`, or why a resume would be refused (the config's part of the identity differs)."""
    if not files.has_manifest:
        return "new run"
    try:
        before = files.manifest.identity
    except (OSError, UserError):
        return f"{files.manifest_path} unreadable: the run would stop"
    try:
        now = result_identity(cfg)  # without the dataset hash and versions, which only the run itself computes
    except UserError as e:  # weights or an answers file missing: the job's needs say so
        return f"resume not checked: {e}"
    if now.get("execution.isolation") == "auto":
        now.pop("execution.isolation")  # the run writes down what `auto` became on its machine
    changed = identity_changes(before, now, keys=now)
    if changed:
        return f"resume refused, the config differs ({shown_changes(changed, spill=False)})"
    return "resumes"


def used_models(cfg: Any, benchmark: Any, sample: Sequence[Any]) -> dict[str, Any]:
    """The model configs a run would build, by role: the coder and every judge of the panel (built whether they
    are called or not), and the models the memory says it calls for a record of the `sample` problem."""
    memory = class_of(cfg.memory)
    calls = [c for p in sample for c in memory.planned_calls(cfg.memory, p)]
    calls += memory.planned_learning(cfg.memory, benchmark, [list(sample)])
    return {"coder": cfg.model, **{call.role: call.model for call in calls},
            **{f"judge {number}": entry.model for number, entry in enumerate(cfg.judge.panel)}}


def offline_models(used: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The models `used` names built without their response cache (opening one creates its file), and what
    building them said is missing (keys, weights, packages); what their providers need besides (GPUs for vLLM)."""
    models, needs, seen = {}, [], set()
    for role, node in used.items():
        settings, made = OmegaConf.to_container(node, resolve=True), class_of(node)
        if issubclass(made, ProviderModel):
            needs += made.needs(settings)
            settings = {**settings, "cache_path": None}
        try:
            models[role] = instantiate(settings)
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
    from spark_eval.memory.docs.kb import kb_complete, kb_path

    python = Path(str(cfg.execution.python))
    if not python.is_file():
        return [f"grading environment {python}: missing (`make setup` builds it)"]
    found = []
    store = cfg.memory.get("store")
    if store and is_database_url(str(store)):
        found.append(f"the PostgreSQL store {shown_url(str(store))}")
    if not class_of(cfg.memory).searches_docs(cfg.memory):
        return found
    documented = Path(str(cfg.memory.kb.python))
    if not documented.is_file():
        return found + [f"memory.kb.python {documented}: missing (the KB documents the grading environment's "
                        "libraries; `make setup` builds it)"]
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
            log.info("%s", "\n".join(total_lines(self.plans) + power_lines(self.plans)))


def total_lines(plans: Sequence[Plan]) -> list[str]:
    records = sum(p.records for p in plans)
    done = sum(p.done for p in plans)
    by_component = {name: total_of(p.components.get(name, Tally()) for p in plans) for name in ROLES}
    rows = [(name, t) for name, t in by_component.items() if t.calls]
    needs = sorted({need for p in plans for need in p.needs})
    return [f"dry run total, {len(plans)} jobs: {records} records, {records - done} to run, {done} done",
            *tally_lines(rows + [("total", total_of(by_component.values()))]), *(f"  needs: {n}" for n in needs)]


def design(cfg: Any) -> Design:
    """What the MDE of the job's comparison with the same model's `report.baseline` assumes: `plan.discordance`
    and `plan.rho` as stated, or both measured (stats.power.design_from_pilot) on the paired records of this
    model's memory and baseline in the runs `plan.pilot` matches; a rho the pilot cannot measure stays stated."""
    settings, model, memory, baseline = cfg.plan, cfg.model.name, cfg.memory.name, cfg.report.baseline
    for name, example in (("discordance", 0.3), ("rho", 0.5)):
        if not 0 <= float(settings[name]) <= 1:
            raise UserError(f"plan.{name}={settings[name]} is not a share; give a value between 0 and 1, "
                            f"e.g. plan.{name}={example}")
    discordance, rho = float(settings.discordance), float(settings.rho)
    stated = f"stated discordance {discordance:.0%}, intra-family rho {rho:g}"
    if not settings.pilot:
        return Design(discordance, rho, stated)
    pattern = str(settings.pilot)
    pilot = pilot_passes(pattern)
    arm, base = pilot.get((model, memory), {}), pilot.get((model, baseline), {})
    shared = sorted(set(arm) & set(base))
    if not shared:
        return Design(discordance, rho, f"{stated}: pilot {pattern} holds no paired records of {model}/{memory} "
                                        f"and {model}/{baseline}")
    measured, measured_rho = design_from_pilot([arm[p][1] - base[p][1] for p in shared],
                                               [arm[p][0] for p in shared])
    if math.isnan(measured_rho):  # no family of two problems, or no discordant problem
        return Design(measured, rho, f"discordance {measured:.0%} measured on pilot {pattern} ({len(shared)} "
                                     f"paired problems), intra-family rho {rho:g} stated (the pilot cannot measure it)")
    return Design(measured, measured_rho, f"discordance {measured:.0%} and intra-family rho {measured_rho:.2f} "
                                          f"measured on pilot {pattern} ({len(shared)} paired problems)")


def pilot_passes(pattern: str) -> dict[tuple[str, str], dict[int, tuple[str, float]]]:
    """Per (model, memory) of the runs `pattern` matches: each problem's origin family and pass@1, the share of
    its records without an error that passed (epochs, samples and seeds averaged, as the report does)."""
    paths = sorted(Path(p) for p in glob.glob(pattern) if holds_records(p))
    if not paths:
        raise UserError(f"plan.pilot={pattern} matches no run directory (a folder with records.jsonl); give a glob "
                        "of finished runs, e.g. plan.pilot='results/<experiment>/*'")
    passes: dict[tuple[str, str], dict[int, tuple[str, list[float]]]] = defaultdict(dict)
    for path in paths:
        for r in RunFiles(path).records:
            if not r.error:
                passes[(r.model, r.memory)].setdefault(r.problem_id, (r.family, []))[1].append(float(r.passed))
    return {key: {pid: (family, sum(values) / len(values)) for pid, (family, values) in problems.items()}
            for key, problems in passes.items()}


def power_lines(plans: Sequence[Plan]) -> list[str]:
    """Per comparison the jobs make (each memory of a model against the same model's baseline, on the problems
    both run), the MDE its design will reach on pass@1 (stats.power.planned_mde) in percentage points, with the
    problems and origin families it rests on and the assumption used (the job's `design`)."""
    units: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    designs: dict[tuple[str, str], tuple[str, Design]] = {}
    for plan in plans:
        units[(plan.model, plan.memory)].update(plan.units)
        if plan.design is not None:
            designs[(plan.model, plan.memory)] = plan.baseline, plan.design
    lines = []
    for (model, memory), (baseline, assumed) in sorted(designs.items()):
        if (model, baseline) not in units:
            continue
        shared = {pid: family for pid, family in units[(model, memory)].items() if pid in units[(model, baseline)]}
        sizes = list(Counter(shared.values()).values())
        found = planned_mde(assumed.discordance, sizes, assumed.rho)
        shown = f"{100 * found:.1f} pts" if not math.isnan(found) else "not defined (fewer than 2 origin families)"
        beyond = (f", above the {assumed.discordance:.0%} discordance: no difference it allows has {POWER:.0%} "
                  "power" if found > assumed.discordance else "")
        lines.append(f"  {model}/{memory} vs {baseline}: MDE {shown} on pass@1 from {len(shared)} problems in "
                     f"{len(sizes)} origin families ({assumed.source}){beyond}")
    header = (f"dry run power: the smallest pass@1 difference each comparison detects (two-sided {ALPHA:g}, "
              f"power {POWER:.0%})")
    return [header, *lines] if lines else []
