"""stage=judge: add a judge panel's verdicts to an existing run, resumably, without calling the coder again.

Verdicts are appended to `judgments.jsonl` (a journal, flushed per verdict) and merged into
`records.jsonl` at the end; a killed pass merges its journal first and goes on where it stopped. `budget.usd` caps
the pass as it caps a run (pipeline/budget.py): no verdict starts past it, the verdicts under way finish and are
kept, and the pass is recorded as `budget_exhausted`; the same command with a higher cap goes on.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from spark_eval.data import build_benchmark
from spark_eval.judge.panel import build_panel, panel_versions
from spark_eval.models.pool import ModelPool
from spark_eval.models.base import ModelCallError, ModelUnavailable
from spark_eval.models.ledger import BudgetExhausted, Ledger
from spark_eval.pipeline.budget import Budget, Gate, open_budget
from spark_eval.pipeline.rundir import RunDirectory, keep_hydra_copy
from spark_eval.records import Judgment, Record, RunDirectoryError, append_jsonl, read_lines
from spark_eval.records.run import MANIFEST, RECORDS, RunFiles
from spark_eval.stats.summary import write_derived

log = logging.getLogger(__name__)


def judge_run(cfg: DictConfig) -> dict[str, Any]:
    """Judge every record of `cfg.run_dir` with `cfg.judge` that lacks that judge's verdicts."""
    if not cfg.run_dir:
        raise RunDirectoryError("stage=judge needs run_dir=<a run directory with records.jsonl>")
    files = RunFiles(cfg.run_dir)
    if not files.has_manifest or not files.has_records:
        raise RunDirectoryError(f"{files.path} is not a run directory (no {MANIFEST} and {RECORDS})")
    # locked: a run still writing it, or another judge pass, would lose records
    rundir = RunDirectory(files.path, files=files, purpose="stage=judge")
    models = ModelPool(Ledger())
    try:
        budget = open_budget(cfg.budget, rundir.files, models.ledger, judging=True)  # a cap below the spend stops here
        return _judge_locked(cfg, rundir, models, budget)
    finally:
        models.close()  # an in-process engine gives its GPUs back
        rundir.close()


def _judge_locked(cfg: DictConfig, rundir: RunDirectory, models: ModelPool, budget: Budget) -> dict[str, Any]:
    run_dir, manifest = rundir.path, rundir.manifest
    benchmark = build_benchmark(cfg.dataset)
    if benchmark.data_hash() != manifest.dataset_hash:
        raise RunDirectoryError(f"{run_dir} was made from another benchmark or copy than {benchmark.name} at "
                                f"{cfg.dataset.path}; set benchmark=<its benchmark> and dataset.path to that copy")
    keep_hydra_copy(run_dir, cfg)  # once locked and checked: a refused pass leaves the run's files as they were
    problems = {p.problem_id: p for p in benchmark.problems()}
    judges = build_panel(cfg.judge, models)
    journal = rundir.files.journal_path
    records = merge_journal(rundir)
    todo = [(r, j, k) for r in records if r.code is not None for j in judges
            for k in range(cfg.judge.repeats) if not _has_verdict(r, j.name, j.version, k)]
    log.info("%s: %d items without a verdict from %s", run_dir, len(todo), ", ".join(j.name for j in judges))
    if todo:
        models.start()  # engines load now, not inside the first verdict's timeout
    try:
        added, complete = asyncio.run(models.closing(_judge_all(todo, problems, journal, cfg.pipeline, budget)))
    finally:  # also when a model can take no call: what the pass spent counts
        rundir.write_manifest(spent_usd=round(budget.own(), 6))
    records = merge_journal(rundir)
    summary = write_derived(run_dir, records)
    status = "finished" if complete else "budget_exhausted"
    passes = manifest.judge_passes + [{"judge": cfg.judge.name, "versions": panel_versions(judges),
                                       "verdicts_added": added, "status": status}]
    rundir.write_manifest(judge_passes=passes, spent_usd=round(budget.own(), 6),
                          ledger={**manifest.ledger, **summary["ledger"]})
    if not complete:
        log.warning("budget.usd=%g reached (%s spent) with %d verdicts added; run the same command with a higher "
                    "budget.usd to go on", budget.usd, budget.shown(), added)
    return summary


async def _judge_all(todo: list, problems: dict, journal: Path, pipeline: Any, budget: Budget) -> tuple[int, bool]:
    """Grade each (record, judge, repeat) the budget allows, journaling every verdict as it comes: how many verdicts,
    and whether every one was asked (False: the budget stopped the pass)."""
    models = {id(m): m for _, judge, _ in todo if (m := getattr(judge, "model", None)) is not None}  # what they take
    slots = asyncio.Semaphore(pipeline.concurrency or max((m.at_once() for m in models.values()), default=1))
    progress = tqdm(total=len(todo), disable=not pipeline.progress, unit="verdict", postfix={"spent": budget.shown()})
    gate = Gate(budget)
    stopped = False

    async def one(record: Record, judge: Any, repeat: int) -> int:
        nonlocal stopped
        async with slots:
            if not await gate.enter():
                stopped = True  # not started: even alone it would pass the cap
                return 0
            try:
                verdict = await judge.grade(problems[record.problem_id], record.code, record.recommendation, repeat)
            except BudgetExhausted:
                stopped = True  # a call of it was refused: the next pass (with a higher cap) asks again
                return 0
            except ModelUnavailable:
                raise  # every verdict would fail: the pass stops in one line
            except ModelCallError as e:  # an outage: no verdict is journaled, so the next pass asks again
                log.warning("%s: %s failed: %s", record.key, judge.name, e)
                return 0
            finally:
                await gate.leave()
                progress.update(1)
                progress.set_postfix({"spent": budget.shown()})
        if verdict is None:  # nothing to judge (a helpfulness judge on a record without a recommendation)
            return 0
        append_jsonl(journal, {"key": record.key, "judgment": verdict.to_json()})
        return 1

    added = sum(await asyncio.gather(*(one(r, j, k) for r, j, k in todo)))
    progress.close()
    return added, not stopped


def merge_journal(rundir: RunDirectory) -> list[Record]:
    """Fold journaled verdicts into records.jsonl (atomically), then drop the journal; the merged records.
    A verdict torn by a kill is left out: it is judged again (its reply is in the response cache)."""
    records, journal = rundir.records, rundir.files.journal_path
    if not journal.exists():
        return records
    by_key = {r.key: r for r in records}
    for entry in read_lines(journal, repair=True):
        verdict, record = Judgment.from_json(entry["judgment"]), by_key.get(entry["key"])
        if record is not None and not _has_verdict(record, verdict.judge, verdict.version, verdict.repeat):
            by_key[record.key] = record = replace(record, judgments=(*record.judgments, verdict))
    rundir.rewrite([by_key[r.key] for r in records])
    journal.unlink()
    return rundir.records


def _has_verdict(record: Record, judge: str, version: str, repeat: int) -> bool:
    return any(j.judge == judge and j.version == version and j.repeat == repeat for j in record.judgments)
