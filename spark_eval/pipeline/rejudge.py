"""stage=judge: add a judge panel's verdicts to an existing run, resumably, without calling the coder again.

Verdicts are appended to `judgments.jsonl` (a journal, flushed per verdict) and merged into
`records.jsonl` at the end; a killed pass merges its journal first and goes on where it stopped.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from spark_eval.data.ds1000 import dataset_hash, read_dataset
from spark_eval.judge.panel import ModelPool, build_panel, panel_versions
from spark_eval.models.base import ModelCallError
from spark_eval.pipeline.rundir import RunDirectoryError, RunLock, load_records, rewrite_records, write_derived, write_json
from spark_eval.types import Recommendation

log = logging.getLogger(__name__)


def judge_run(cfg: DictConfig) -> dict[str, Any]:
    """Judge every record of `cfg.run_dir` with `cfg.judge` that lacks that judge's verdicts."""
    if not cfg.run_dir:
        raise RunDirectoryError("stage=judge needs run_dir=<a run directory with records.jsonl>")
    run_dir = Path(cfg.run_dir)
    manifest_path, records_path = run_dir / "manifest.json", run_dir / "records.jsonl"
    if not manifest_path.is_file() or not records_path.is_file():
        raise RunDirectoryError(f"{run_dir} is not a run directory (no manifest.json and records.jsonl)")
    lock = RunLock(run_dir, "stage=judge")  # a run still writing it, or another judge pass, would lose records
    models = ModelPool()
    try:
        return _judge_locked(cfg, run_dir, models)
    finally:
        models.close()  # an in-process engine gives its GPUs back
        lock.release()


def _judge_locked(cfg: DictConfig, run_dir: Path, models: ModelPool) -> dict[str, Any]:
    manifest_path, records_path = run_dir / "manifest.json", run_dir / "records.jsonl"
    manifest = json.loads(manifest_path.read_text())
    dataset = read_dataset(cfg.dataset)
    if dataset_hash(dataset) != manifest.get("dataset_hash"):
        raise RunDirectoryError(f"{run_dir} was made from another DS-1000 copy; set dataset.path to that copy")
    problems = {p.problem_id: p for p in dataset}
    judges = build_panel(cfg.judge, models)
    journal = run_dir / "judgments.jsonl"
    records = merge_journal(records_path, journal)
    todo = [(r, j, k) for r in records if r.get("code") is not None for j in judges
            for k in range(cfg.judge.repeats) if not _has_verdict(r, j.name, j.version, k)]
    log.info("%s: %d items without a verdict from %s", run_dir, len(todo), ", ".join(j.name for j in judges))
    if todo:
        models.start()  # engines load now, not inside the first verdict's timeout
    added = asyncio.run(_judge_all(todo, problems, journal, cfg.pipeline))
    records = merge_journal(records_path, journal)
    summary = write_derived(run_dir, records)
    passes = manifest.get("judge_passes", []) + [{"judge": cfg.judge.name, "versions": panel_versions(judges),
                                                  "verdicts_added": added}]
    write_json(manifest_path, {**manifest, "judge_passes": passes, "ledger": {**manifest.get("ledger", {}), **summary["ledger"]}})
    return summary


async def _judge_all(todo: list, problems: dict, journal: Path, pipeline: Any) -> int:
    """Grade each (record, judge, repeat), journaling every verdict as it comes; how many verdicts."""
    slots = asyncio.Semaphore(pipeline.concurrency)
    progress = tqdm(total=len(todo), disable=not pipeline.progress, unit="verdict")

    async def one(record: dict, judge: Any, repeat: int) -> int:
        async with slots:
            recommendation = _recommendation(record.get("recommendation"))
            try:
                verdict = await judge.grade(problems[record["problem_id"]], record["code"], recommendation, repeat)
            except ModelCallError as e:  # an outage: no verdict is journaled, so the next pass asks again
                log.warning("%s: %s failed: %s", record["key"], judge.name, e)
                progress.update(1)
                return 0
        if verdict is None:  # nothing to judge (a helpfulness judge on a record without a recommendation)
            progress.update(1)
            return 0
        with journal.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": record["key"], "judgment": asdict(verdict)}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        progress.update(1)
        return 1

    added = sum(await asyncio.gather(*(one(r, j, k) for r, j, k in todo)))
    progress.close()
    return added


def merge_journal(records_path: Path, journal: Path) -> list[dict[str, Any]]:
    """Fold journaled verdicts into records.jsonl (atomically), then drop the journal; the merged records."""
    records = load_records(records_path)
    if not journal.exists():
        return records
    by_key = {r["key"]: r for r in records}
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a verdict torn by a kill: it is judged again (its reply is in the response cache)
        verdict, record = entry["judgment"], by_key.get(entry["key"])
        if record is not None and not _has_verdict(record, verdict["judge"], verdict["version"], verdict["repeat"]):
            record["judgments"].append(verdict)
    rewrite_records(records_path, records)
    journal.unlink()
    return records


def _has_verdict(record: dict[str, Any], judge: str, version: str, repeat: int) -> bool:
    return any(j["judge"] == judge and j.get("version") == version and j.get("repeat", 0) == repeat
               for j in record.get("judgments") or [])


def _recommendation(data: dict[str, Any] | None) -> Recommendation | None:
    if data is None:
        return None
    return Recommendation(text=data["text"], plan=data.get("plan") or {}, items=tuple(data.get("items") or ()),
                          leak_flag=bool(data.get("leak_flag")), trace=data.get("trace") or {},
                          error=data.get("error"))
