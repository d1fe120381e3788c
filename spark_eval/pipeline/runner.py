"""Run one condition over the selected problems, epochs and rounds, into a resumable run directory."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from spark_eval.data.ds1000 import dataset_hash, read_dataset, select_problems
from spark_eval.judge.panel import build_panel, panel_versions
from spark_eval.models.pool import ModelPool
from spark_eval.memory import build_memory
from spark_eval.models.coder import as_coder
from spark_eval.pipeline.rundir import RunDirectory, git_state, result_identity
from spark_eval.pipeline.solve import VERSIONS, Condition, solve
from spark_eval.records.summary import format_pass_table
from spark_eval.types import Problem
from spark_eval.records import Record, record_key

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run the experiment `cfg` describes; returns its summary. Everything is checked before any work."""
    run_dir = Path(run_dir or _hydra_output_dir())
    dataset = read_dataset(cfg.dataset)
    problems = select_problems(dataset, cfg.dataset)
    problems = stream_order(problems, cfg.pipeline.shuffle, cfg.seed)
    models = ModelPool()
    coder, memory = as_coder(models.get(cfg.model), cfg.seed), build_memory(cfg.memory, models, run_dir)
    judges = build_panel(cfg.judge, models)
    versions = {**VERSIONS, **panel_versions(judges), **memory.versions()}
    sandbox = instantiate(cfg.execution)
    data_hash = dataset_hash(dataset)
    identity = result_identity(cfg, dataset_hash=data_hash, versions=versions,
                               grading_env=sandbox.environment.freeze_hash,
                               execution={"isolation": sandbox.isolation})  # what `auto` became here
    condition = Condition(coder, memory, sandbox, judges, cfg.judge.repeats, cfg.seed, versions)
    rundir = RunDirectory(run_dir, identity)
    try:
        return _run_locked(cfg, rundir, problems, condition, data_hash, models)
    finally:
        rundir.close()
        models.close()  # an in-process engine (vLLM) gives its GPUs back before the next job of a sweep


def _run_locked(cfg: DictConfig, rundir: RunDirectory, problems: list[Problem], condition: Condition,
                data_hash: str, models: ModelPool) -> dict[str, Any]:
    sandbox, memory = condition.sandbox, condition.memory
    finished = rundir.drop_errored(rundir.load_records())
    started = time.monotonic()
    rundir.write_manifest(
        status="running",
        started_at=_now(),
        dataset_hash=data_hash,
        problem_ids=[p.problem_id for p in problems],
        versions=condition.versions,
        execution=sandbox.describe(),
        leaky=memory.leaky,
        **git_state(),
    )
    with sandbox:
        try:
            if len(finished) < len(problems) * cfg.pipeline.epochs * cfg.pipeline.repeats:
                sandbox.start()  # fail fast on a broken grading environment, before any model call
                models.start()  # engines load now, not inside the first request's timeout
            in_flight = max(cfg.pipeline.concurrency, getattr(models.get(cfg.model), "batch_size", None) or 0)
            asyncio.run(_run_stream(problems, condition, rundir, finished, cfg.pipeline, in_flight))
        except BaseException:
            rundir.write_manifest(status="interrupted", stopped_at=_now(), memory=memory.describe())
            memory.close()
            raise
    summary = rundir.write_summary()
    described = memory.describe()
    rundir.write_manifest(
        status="finished",
        finished_at=_now(),
        wall_s=round(time.monotonic() - started, 2),
        counts={"records": summary["n"], **summary["statuses"], "errors": summary["errors"]},
        ledger={**summary["ledger"], **described.pop("ledger", {})},
        memory=described,
    )
    memory.close()
    log.info("%s\n%s", rundir.path, format_pass_table(summary))
    return summary


async def _run_stream(problems: list[Problem], condition: Condition, rundir: RunDirectory, finished: list[Record],
                      pipeline: Any, in_flight: int) -> None:
    """Epochs of rounds; each round's problems see one memory snapshot, and are learned from once written.

    `in_flight` problems run at once: `pipeline.concurrency`, or a batching engine's whole batch (vLLM). A
    memory that does not learn has one round per epoch, so nothing waits at a round's end for nothing.
    """
    done = {r.key: r for r in finished}
    total = len(problems) * pipeline.epochs * pipeline.repeats
    progress = _Progress(total, finished, enabled=pipeline.progress)
    slots = asyncio.Semaphore(in_flight)
    round_size = pipeline.round_size if condition.memory.learns else len(problems)

    async def bounded(problem: Problem, epoch: int, repeat: int) -> Record:
        async with slots:
            return await solve(problem, condition, epoch, repeat)

    await condition.memory.prepare(problems)
    for epoch in range(pipeline.epochs):
        for number, start in enumerate(range(0, len(problems), round_size)):
            in_round = {record_key(p.problem_id, epoch, r): (p, r)
                        for p in problems[start : start + round_size] for r in range(pipeline.repeats)}
            todo = [bounded(p, epoch, r) for key, (p, r) in in_round.items() if key not in done]
            for next_record in asyncio.as_completed(todo):
                record = await next_record
                rundir.append(record)  # on disk before anything is learned from it
                progress.update(record)
                done[record.key] = record
            # the whole round, also records of an earlier, killed attempt (the memory skips what it has learned)
            await condition.memory.learn([done[k] for k in in_round], epoch, number)
        condition.memory.checkpoint(epoch)
    progress.close()


def stream_order(problems: list[Problem], shuffle: bool, seed: int) -> list[Problem]:
    """The order problems arrive in: the dataset's, or a shuffle set by the seed (a learning memory's
    results depend on it)."""
    if not shuffle:
        return problems
    order = random.Random(seed).sample(range(len(problems)), len(problems))
    return [problems[i] for i in order]


class _Progress:
    """done/total, pass rate so far and ETA."""

    def __init__(self, total: int, finished: list[Record], enabled: bool) -> None:
        self.statuses = [r.status for r in finished]
        self.bar = tqdm(total=total, initial=len(finished), disable=not enabled, unit="problem", smoothing=0.05)
        self._show()

    def update(self, record: Record) -> None:
        self.statuses.append(record.status)
        self.bar.update(1)
        self._show()

    def _show(self) -> None:
        if self.statuses:
            self.bar.set_postfix(passed=f"{self.statuses.count('passed') / len(self.statuses):.1%}")

    def close(self) -> None:
        self.bar.close()


def _hydra_output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
