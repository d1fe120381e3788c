"""stage=index: one SQLite file over every run directory under paths.results, for SQL or `pandas.read_sql`.

A run directory is a folder holding records.jsonl (folders whose name starts with a dot, such as the response
cache, are not searched). The index is updated, never rebuilt: a run whose records.jsonl, manifest.json and
summary.json kept their size and modification time is left as it is; a changed one has its rows replaced in
one transaction; a run no longer on disk loses its rows. A damaged run (a manifest that is not JSON, not an
object or missing, a line in the middle of records.jsonl that is not a record, a file that cannot be read) is
left out, named in one log line, and keeps the rows it had, so nothing indexed before is lost; an integer too
large for SQLite is stored as its digits. A torn last line of records.jsonl (a
run killed mid-write, or one still writing) is skipped as every reader does, and the run's files are never
written to. The tables and their columns: spark_eval.records.index_schema.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from spark_eval.errors import UserError
from spark_eval.records.files import RunDirectoryError
from spark_eval.records.format import Judgment, Record, RetrievedItem
from spark_eval.records.index_schema import SCHEMA_VERSION, TABLES, columns, schema
from spark_eval.records.run import MANIFEST, RECORDS, SUMMARY, Manifest, RunFiles

log = logging.getLogger(__name__)

DAMAGE = (RunDirectoryError, ValueError, OSError, TypeError, AttributeError, KeyError, OverflowError)
"""What reading a damaged run directory, or storing what it holds, raises (json's errors are ValueErrors; a value
SQLite refuses raises one of them, and its run's rows are rolled back)."""
SQLITE_INTEGERS = range(-2**63, 2**63)
"""The integers SQLite stores as integers; a larger one (a damaged or hand-edited field) is stored as its digits."""


class IndexFileError(UserError):
    """The index file or the results folder cannot be used; the message names the fix."""


@dataclass
class IndexUpdate:
    """What one update did, by run (names relative to the results folder)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Damaged runs left out (their earlier rows, if any, are kept)."""

    def line(self) -> str:
        damaged = f" ({', '.join(self.skipped)})" if self.skipped else ""
        return (f"{len(self.added)} runs added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed, {len(self.skipped)} skipped as damaged{damaged}")


def index_stage(cfg: Any) -> IndexUpdate:
    """`python -m spark_eval stage=index [paths.results=<folder>] [index=<file>]`."""
    return update_index(Path(cfg.paths.results), Path(cfg.index))


def update_index(root: Path, target: Path) -> IndexUpdate:
    """Bring the index file `target` up to date with the run directories under `root`."""
    if not root.is_dir():
        raise IndexFileError(f"paths.results={root} is not a folder; point paths.results at the folder of run "
                          "directories to index")
    found = dict(find_runs(root))
    done = IndexUpdate()
    db = connect(target)
    try:
        known = dict(db.execute("SELECT run, signature FROM runs").fetchall())
        for name, path in found.items():
            before = signature(path)
            if known.get(name) == before:
                done.unchanged.append(name)
                continue
            try:
                rows = read_run(name, path)
                rows["runs"][0]["signature"] = before  # from before reading: a change while reading is read next time
                replace_run(db, name, rows)
            except DAMAGE as e:
                log.warning("index: left out damaged run %s (%s); its earlier rows, if any, are kept", path, e)
                done.skipped.append(name)
                continue
            (done.updated if name in known else done.added).append(name)
        for name in sorted(set(known) - set(found)):
            replace_run(db, name, {})
            done.removed.append(name)
    finally:
        db.close()
    log.info("index %s: %s", target, done.line())
    return done


def find_runs(root: Path) -> Iterator[tuple[str, Path]]:
    """(name relative to root, path) of every run directory under root, sorted; hidden folders are not searched."""
    for folder, dirs, files in os.walk(root):
        if RECORDS in files:
            dirs[:] = []  # a run's own folders (memory/, .hydra/) hold no runs
            path = Path(folder)
            yield path.relative_to(root).as_posix(), path
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))


def signature(path: Path) -> str:
    """The run's files' stamp (`RunFiles.stamp`: size and modification time of each file its rows are read
    from, null when absent), as JSON: a change in any of them re-reads the run."""
    return json.dumps(RunFiles(path).stamp, sort_keys=True)


def connect(target: Path) -> sqlite3.Connection:
    """The index file, created or brought to SCHEMA_VERSION (an index of another version is emptied)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(target, timeout=60, isolation_level=None)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute("BEGIN IMMEDIATE")
        if version != SCHEMA_VERSION:
            for table in TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in schema():
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        db.close()
        raise IndexFileError(f"index={target} is not an index this spark_eval can update ({e}); delete it or set "
                          "index=<another file>") from None
    return db


def replace_run(db: sqlite3.Connection, name: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Delete every row of run `name` and insert `rows` (table -> rows), in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            db.execute(f"DELETE FROM {table} WHERE run = ?", (name,))
            names = columns(table)
            if rows.get(table):
                db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})",
                               [tuple(_scalar(row.get(c)) for c in names) for row in rows[table]])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def read_run(name: str, path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows for one run directory; raises one of DAMAGE when it cannot be read whole."""
    files = RunFiles(path)
    if not files.has_manifest:
        raise RunDirectoryError(f"{files.manifest_path} does not exist; this is not a run directory, or it was never "
                                "started")
    manifest, summary, records = files.manifest, files.summary() or None, files.records
    rows: dict[str, list[dict[str, Any]]] = {"runs": [run_row(name, path, manifest, records)]}
    rows["summaries"] = [summary_row(name, summary)] if summary is not None else []
    rows["records"] = [record_row(name, line, r) for line, r in enumerate(records, start=1)]
    rows["verdicts"] = [verdict_row(name, r, j) for r in records for j in r.judgments]
    rows["items"] = [item_row(name, r, rank, item) for r in records if r.recommendation
                     for rank, item in enumerate(r.recommendation.items, start=1)]
    ledger, source = manifest.ledger, MANIFEST
    if not ledger and summary:
        ledger, source = summary.get("ledger") or {}, SUMMARY
    rows["ledger"] = [{"run": name, "component": component, "source": source, **usage}
                      for component, usage in sorted((ledger or {}).items()) if isinstance(usage, dict)]
    return rows


def run_row(name: str, path: Path, manifest: Manifest, records: list[Record]) -> dict[str, Any]:
    identity, found = manifest.identity, manifest.to_json()  # the columns hold what the file holds, absent as null
    memory = manifest.memory if isinstance(manifest.memory, dict) else {}
    first = records[0] if records else None
    return {
        "run": name, "path": str(path.resolve()),
        "experiment": identity.get("experiment_name") or path.parent.name,
        "benchmark": identity.get("dataset.name"),
        "model": first.model if first else identity.get("model.name"),
        "memory": first.memory if first else identity.get("memory.name"),
        "seed": first.seed if first else identity.get("seed"),
        **{k: found.get(k) for k in ("status", "started_at", "finished_at", "wall_s", "counts", "dataset_hash",
                                     "config_hash", "git_sha", "git_dirty", "versions")},
        "records": len(records), "passed": sum(r.passed for r in records),
        "errors": sum(bool(r.error) for r in records), "problems": len({r.problem_id for r in records}),
        "leaky": bool(manifest.leaky) or any(r.leaky for r in records),
        "memory_state_hash": memory.get("state_hash"), "insights": memory.get("insights"),
        "manifest": found, "indexed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def summary_row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "passed", "pass_rate", "errors", "infra_error", "leak_flag_rate", "quality_mean",
            "helpfulness_bands", "by_library", "by_perturbation")
    return {"run": name, **{k: summary.get(k) for k in keys}, "summary": summary}


def record_row(name: str, line: int, r: Record) -> dict[str, Any]:
    c, advice = r.completion, r.recommendation
    return {
        "run": name, "line": line, "key": r.key, "problem_id": r.problem_id, "library": r.library,
        "perturbation_type": r.perturbation_type, "family": r.family, "model": r.model, "memory": r.memory,
        "seed": r.seed, "epoch": r.epoch, "repeat": r.repeat, "status": r.status, "passed": r.passed,
        "error": r.error or None, "error_type": r.exec.error_type if r.exec else None, "advised": r.advised,
        "advice_error": (advice.error if advice else None) or None, "rec_leak": bool(advice and advice.leak_flag),
        "items": len(advice.items) if advice else 0, "memory_hash": r.memory_hash, "versions": r.versions,
        **({"input_tokens": c.input_tokens, "output_tokens": c.output_tokens, "cost_usd": c.cost_usd,
            "latency_s": c.latency_s, "cached": c.cached} if c else {}),
    }


def verdict_row(name: str, r: Record, j: Judgment) -> dict[str, Any]:
    return {"run": name, "key": r.key, "problem_id": r.problem_id, "judge": j.judge, "kind": j.kind,
            "repeat": j.repeat, "score": j.score, "band": j.band, "parse_error": j.parse_error, "version": j.version,
            "input_tokens": j.usage.input_tokens, "output_tokens": j.usage.output_tokens,
            "cost_usd": j.usage.cost_usd, "criteria": j.criteria or None}


def item_row(name: str, r: Record, rank: int, item: RetrievedItem) -> dict[str, Any]:
    return {"run": name, "key": r.key, "problem_id": r.problem_id, "rank": rank, "item_id": item.id,
            "kind": item.kind, "score": item.score, "cited": item.cited, "leak": item.leak,
            "contributors": ",".join(item.contributors or ()) or None}


def _scalar(value: Any) -> Any:
    """A value SQLite stores: containers as JSON text, an integer past 64 bits as its digits (a REAL column
    makes them a number)."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, int) and value not in SQLITE_INTEGERS:
        return str(value)
    return value
