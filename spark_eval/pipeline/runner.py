"""Run one condition over the selected problems, epochs and rounds, into a resumable run directory."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from spark_eval.data import build_benchmark
from spark_eval.errors import UserError
from spark_eval.execution import OUTPUT_VERSION
from spark_eval.execution.environment import probe_environment
from spark_eval.judge.panel import build_panel, panel_versions
from spark_eval.memory import build_memory
from spark_eval.models.base import Pooled
from spark_eval.models.coder import as_coder
from spark_eval.models.pool import ModelPool
from spark_eval.models.ledger import BudgetExhausted, Ledger
from spark_eval.pipeline.budget import Budget, Gate, open_budget
from spark_eval.pipeline.rundir import RunDirectory, git_state, keep_hydra_copy, result_identity
from spark_eval.pipeline.solve import Condition, solve
from spark_eval.stats.summary import format_not_passed, format_pass_table, write_derived
from spark_eval.records import Record, record_key
from spark_eval.records.run import RunFiles
from spark_eval.types import Problem

log = logging.getLogger(__name__)

SPEND_EVERY_S = 5.0  # how often a running run writes its spend into the manifest (what a resume reads back)


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run the experiment `cfg` describes; returns its summary. Everything is checked before any work."""
    run_dir = Path(run_dir or _hydra_output_dir())
    files = RunFiles(run_dir)  # read once: the budget, then the locked directory (unless they changed meanwhile)
    models = ModelPool(Ledger())
    try:
        budget = open_budget(cfg.budget, files, models.ledger)  # a cap below the spend stops before anything
        problems, condition = assemble(cfg, models, run_dir)
        rundir = RunDirectory(run_dir, identity(cfg, condition), files)  # locked, and the identity checked
        try:
            done = rundir.finished_summary()
            if done is not None:
                rundir.touch()
                log.info("%s finished earlier (%d records); nothing to do", rundir.path, done.get("n", 0))
                return done
            keep_hydra_copy(rundir.path, cfg)
            session = Session(cfg, rundir, problems, condition, models, budget)
            start(session)
            wall_s, complete = stream(session)
            return finish(session, wall_s, complete)
        finally:
            rundir.close()
    finally:
        models.close()  # an in-process engine (vLLM) gives its GPUs back before the next job of a sweep


def assemble(cfg: DictConfig, models: ModelPool, run_dir: Path) -> tuple[list[Problem], Condition]:
    """The problems in stream order, and the condition: benchmark, coder, memory, sandbox and judges."""
    benchmark = build_benchmark(cfg.dataset)
    problems = share_of(stream_order(benchmark.select(), cfg.pipeline.shuffle, cfg.seed), cfg.pipeline.share)
    coder = as_coder(check_samples(models.get(cfg.model), cfg.pipeline.samples), benchmark, cfg.seed)
    memory = build_memory(cfg.memory, models, run_dir, benchmark)
    gate = getattr(memory, "gate", None)  # memory/gate.py: a memory that may choose silence
    if gate is not None:
        gate.check(coder)  # before any work: a coder whose logits cannot be read cannot be gated
    judges = build_panel(cfg.judge, models)
    versions = {**benchmark.versions(), "output": OUTPUT_VERSION, **panel_versions(judges), **memory.versions}
    sandbox = instantiate(cfg.execution)
    return problems, Condition(benchmark, coder, memory, sandbox, judges, cfg.judge.repeats, cfg.seed, versions)


def identity(cfg: DictConfig, condition: Condition) -> dict[str, Any]:
    """What resume checks: the config that changes results, the data's hash, the versions, the grading setup."""
    sandbox = condition.sandbox
    grading_env = sandbox.environment.freeze_hash
    return result_identity(cfg, dataset_hash=condition.benchmark.data_hash(), versions=condition.versions,
                           grading_env=grading_env, **documented_environment(cfg, grading_env),
                           execution={"isolation": sandbox.isolation})  # what `auto` became here


def documented_environment(cfg: DictConfig, grading_env: str) -> dict[str, str]:
    """`kb_env`: the installed packages (freeze hash) of the interpreter whose libraries the memory documents
    (`memory.kb.python`, a location), when they are not the grading interpreter's, which `grading_env` holds."""
    kb = cfg.memory.get("kb")
    if kb is None or str(kb.python) == str(cfg.execution.python):
        return {}
    if not Path(str(kb.python)).is_file():
        raise UserError(f"memory.kb.python={kb.python} does not exist; point it at the interpreter whose libraries "
                        "the memory documents (by default the grading interpreter, execution.python)")
    found = probe_environment(str(kb.python)).freeze_hash
    return {} if found == grading_env else {"kb_env": found}


@dataclass(frozen=True)
class Session:
    """One run under way: what its stages share."""

    cfg: DictConfig
    rundir: RunDirectory
    """Locked; holds the manifest and the records written so far."""
    problems: list[Problem]
    """In stream order."""
    condition: Condition
    models: ModelPool
    budget: Budget


def start(session: Session) -> None:
    """Drop the records an earlier attempt ended in an error (they are retried); the manifest says `running`."""
    rundir, problems, condition = session.rundir, session.problems, session.condition
    rundir.drop_errored()
    rundir.write_manifest(status="running", started_at=_now(), dataset_hash=condition.benchmark.data_hash(),
                          problem_ids=[p.problem_id for p in problems], versions=condition.versions,
                          execution=condition.sandbox.describe(), leaky=condition.memory.leaky, **git_state())


def stream(session: Session) -> tuple[float, bool]:
    """Every record not yet finished, or as many as the budget allows: seconds of wall time, and whether every
    record is done. A stop of any kind leaves the manifest `interrupted`."""
    cfg, models, budget = session.cfg, session.models, session.budget
    sandbox, memory = session.condition.sandbox, session.condition.memory
    started = time.monotonic()
    with sandbox:
        try:
            if len(session.rundir.records) < len(session.problems) * cfg.pipeline.epochs * cfg.pipeline.samples:
                sandbox.start()  # fail fast on a broken grading environment, before any model call
                models.start()  # engines load now, not inside the first request's timeout
            in_flight = problems_in_flight(cfg.pipeline.concurrency, models.get(cfg.model), sandbox.workers)
            complete = asyncio.run(models.closing(_run_stream(session, in_flight)))
        except BaseException:
            try:
                described = memory.describe()
            except UserError as e:  # the store itself is gone: the manifest says so, the records are all on disk
                described = {"name": memory.name, "error": str(e)}
            session.rundir.write_manifest(status="interrupted", stopped_at=_now(), memory=described,
                                          spent_usd=round(budget.own(), 6))
            memory.close()
            raise
    return time.monotonic() - started, complete


def finish(session: Session, wall_s: float, complete: bool = True) -> dict[str, Any]:
    """summary.json (and validity.json), the manifest `finished` (or `budget_exhausted`) with counts, ledger, spend
    and memory; the pass table and the problems that did not pass go to the log."""
    rundir, problems, budget, memory = session.rundir, session.problems, session.budget, session.condition.memory
    records = rundir.records
    summary = write_derived(rundir.path, records)
    described = memory.describe()
    rundir.write_manifest(
        status="finished" if complete else "budget_exhausted", finished_at=_now(), wall_s=round(wall_s, 2),
        counts={"records": summary["n"], **summary["statuses"], "errors": summary["errors"]},
        ledger={**summary["ledger"], **described.pop("ledger", {})}, memory=described,
        spent_usd=round(budget.own(), 6), budget_usd=budget.usd)
    memory.close()
    if not complete:
        log.warning("budget.usd=%g reached (%s spent) with %d records finished; run the same command with a "
                    "higher budget.usd to go on", budget.usd, budget.shown(), len(records))
    names = {p.problem_id: p.task_id or str(p.problem_id) for p in problems}
    log.info("%s\n%s\n%s", rundir.path, format_pass_table(summary), format_not_passed(records, names))
    return summary


async def _run_stream(session: Session, in_flight: int) -> bool:
    """Epochs of rounds; each round's problems see one memory snapshot, and are learned from once written. True
    when every record is done; False when the budget stopped the stream (problems already running finish, the
    round is not learned from: a resume completes it and learns).

    `in_flight` problems run at once (`problems_in_flight`). A
    memory that does not learn has one round per epoch, so nothing waits at a round's end for nothing.
    """
    problems, condition, pipeline, budget = session.problems, session.condition, session.cfg.pipeline, session.budget
    finished = session.rundir.records
    done = {r.key: r for r in finished}
    total = len(problems) * pipeline.epochs * pipeline.samples
    progress = _Progress(total, finished, enabled=pipeline.progress, budget=budget)
    slots = asyncio.Semaphore(in_flight)
    gate = Gate(budget)

    async def bounded(problem: Problem, epoch: int, repeat: int) -> Record | None:
        async with slots:
            if not await gate.enter():
                return None  # not started: even alone it would pass the cap
            try:
                return await solve(problem, condition, epoch, repeat)
            except BudgetExhausted:
                return None  # a call of it was refused: not written, a resume makes it
            finally:
                await gate.leave()

    try:
        await _rounds(session, done, bounded, progress)
    except BudgetExhausted as e:  # a learning or preparing call refused: a resume learns what was missed first
        log.info("%s", e)
        progress.close()
        return False
    return all(record_key(p.problem_id, e, r) in done for p in problems for e in range(pipeline.epochs)
               for r in range(pipeline.samples))


async def _rounds(session: Session, done: dict[str, Record], bounded: Any, progress: "_Progress") -> None:
    """The epochs of rounds, until the end or a round the budget left incomplete."""
    problems, condition, rundir = session.problems, session.condition, session.rundir
    pipeline, budget = session.cfg.pipeline, session.budget
    round_size = pipeline.round_size if condition.memory.learns else len(problems)
    published = time.monotonic()
    await condition.memory.prepare(problems)
    for epoch in range(pipeline.epochs):
        for number, start in enumerate(range(0, len(problems), round_size)):
            in_round = {record_key(p.problem_id, epoch, r): (p, r)
                        for p in problems[start : start + round_size] for r in range(pipeline.samples)}
            todo = [asyncio.ensure_future(bounded(p, epoch, r)) for key, (p, r) in in_round.items() if key not in done]
            try:
                for next_record in asyncio.as_completed(todo):
                    record = await next_record
                    if record is None:
                        continue
                    rundir.append(record)  # on disk before anything is learned from it
                    progress.update(record)
                    done[record.key] = record
                    if time.monotonic() - published >= SPEND_EVERY_S:  # other processes see it in budget.sqlite
                        rundir.write_manifest(spent_usd=round(budget.own(), 6))
                        published = time.monotonic()
            except BaseException:  # a stop (a model no call can reach): the problems under way end unwritten, quietly
                for task in todo:
                    task.cancel()
                await asyncio.gather(*todo, return_exceptions=True)
                raise
            if any(key not in done for key in in_round):
                progress.close()  # the budget stopped problems: a resume completes the round, then learns
                return
            # the whole round, also records of an earlier, killed attempt (the memory skips what it has learned)
            await condition.memory.learn([done[k] for k in in_round], epoch, number)
            rundir.write_manifest(spent_usd=round(budget.own(), 6))  # the learner's spend too
            published = time.monotonic()
        condition.memory.checkpoint(epoch)
    progress.close()


def problems_in_flight(setting: int | None, coder: Pooled, workers: int) -> int:
    """Problems run at once: `pipeline.concurrency` when set; else as many as the coder's provider takes at once
    (its `concurrency`, a vLLM engine's batch), and never fewer than the sandbox's workers, so programs run while
    the coder generates. Each model still bounds its own requests by its `concurrency`."""
    provider = coder.at_once()
    if setting is None:
        return max(provider, workers)
    if setting < provider:
        log.warning("pipeline.concurrency=%d keeps %s at %d of the %d requests it takes at once; "
                    "leave pipeline.concurrency unset to let model.concurrency decide", setting,
                    getattr(coder, "name", "the coder"), setting, provider)
    return setting


def check_samples(model: Any, samples: int) -> Any:
    """`model`, if it can draw `samples` different answers per problem: more than one needs a sampling
    temperature (None is the provider's default, which samples); a replayed answer is always the same."""
    if samples < 1:
        raise UserError(f"pipeline.samples={samples}: give 1 or more answers per problem")
    # what is sent: a replayed answer never varies; an unset temperature is the provider's default
    temperature = model.default_params().temperature if hasattr(model, "default_params") else 0.0
    if temperature is None:
        temperature = model.default_temperature
    if samples > 1 and temperature is not None and temperature <= 0:
        raise UserError(f"pipeline.samples={samples} would draw the same answer {samples} times from "
                        f"{getattr(model, 'name', 'this coder')} at temperature {temperature or 0}; set "
                        "model.params.temperature=0.8 (pass@k wants sampled answers), or pipeline.samples=1")
    return model


def stream_order(problems: list[Problem], shuffle: bool, seed: int) -> list[Problem]:
    """The order problems arrive in: the dataset's, or a shuffle set by the seed (a learning memory's
    results depend on it)."""
    if not shuffle:
        return problems
    order = random.Random(seed).sample(range(len(problems)), len(problems))
    return [problems[i] for i in order]


def share_of(problems: list[Problem], share: str | None) -> list[Problem]:
    """`i/n`: problems i, i+n, i+2n, ... of the stream (one community member's share of one interleaved stream);
    None: all of them."""
    if not share:
        return problems
    index, _, count = str(share).partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise UserError(f"pipeline.share={share} is not i/n with 0 <= i < n; give e.g. pipeline.share=0/2")
    return problems[int(index) :: int(count)]


class _Progress:
    """done/total, pass rate so far, spend (and its cap) and ETA."""

    def __init__(self, total: int, finished: list[Record], enabled: bool, budget: Budget) -> None:
        self.budget = budget
        self.statuses = [r.status for r in finished]
        self.bar = tqdm(total=total, initial=len(finished), disable=not enabled, unit="problem", smoothing=0.05)
        self._show()

    def update(self, record: Record) -> None:
        self.statuses.append(record.status)
        self.bar.update(1)
        self._show()

    def _show(self) -> None:
        shown = {"spent": self.budget.shown()}
        if self.statuses:
            shown = {"passed": f"{self.statuses.count('passed') / len(self.statuses):.1%}", **shown}
        self.bar.set_postfix(shown)

    def close(self) -> None:
        self.bar.close()


def _hydra_output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
