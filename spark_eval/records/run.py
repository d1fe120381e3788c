"""A run directory's files by name, its typed `Manifest`, and `RunFiles`, the one reader of them all.

The writing side (the lock, appends, the manifest's rewrites) is `pipeline/rundir.py: RunDirectory`, which stands
on a `RunFiles`; everything else (budget, dry run, sweep progress, stats, index) reads through `RunFiles` alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from spark_eval.records.files import RunDirectoryError, TornLine, read_json_object, read_lines, scan_records
from spark_eval.records.format import Record

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.json"
VALIDITY = "validity.json"
JUDGMENTS = "judgments.jsonl"  # stage=judge's journal of verdicts, merged into records.jsonl when it ends
LOCK = ".lock"
MEMORY = "memory"  # the memory's folder: its STORE, HEALTH, a snapshot per epoch and FINAL
STORE = "store.sqlite"  # the experience store, when memory.store does not put it elsewhere
HEALTH = "health.jsonl"
FINAL = "final"
SNAPSHOT_INSIGHTS, SNAPSHOT_OPS, SNAPSHOT_TRACES, SNAPSHOT_STATE = (
    "insights.jsonl", "ops.jsonl", "traces.jsonl", "state.json")  # a snapshot's files; state.json written last
WATCHED = (RECORDS, MANIFEST, SUMMARY)  # the files whose change `RunFiles.stamp` tells


def epoch_snapshot(epoch: int) -> str:
    """The name of the memory's snapshot at the end of `epoch`, in MEMORY."""
    return f"epoch{epoch}"


def holds_records(path: Path | str) -> bool:
    """Whether `path` is a run directory: a folder holding records.jsonl."""
    return (Path(path) / RECORDS).is_file()


@dataclass(frozen=True)
class Manifest:
    """manifest.json: what a run was (identity) and how it went; read with `from_json`, changed with `updated`.
    Fields an older manifest lacks read as their defaults; keys this version does not know are kept in `extra`,
    and `keys` keeps the file's order, so a rewrite loses nothing and moves nothing."""

    status: str | None = None
    """running | interrupted | finished | budget_exhausted"""
    started_at: str | None = None
    dataset_hash: str | None = None
    problem_ids: list[Any] = field(default_factory=list)
    """The problems in stream order."""
    versions: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    """The sandbox's isolation and what it leaves open."""
    leaky: bool | None = None
    """The memory was built with access to reference answers."""
    git_sha: str | None = None
    git_dirty: bool | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    """What resume checks, flattened to `dotted.key: value`."""
    config_hash: str | None = None
    spent_usd: float | None = None
    """This run's spend, earlier attempts and stage=judge passes included; kept current while it runs."""
    stopped_at: str | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    """Per component (coder, agent, learner, judges): calls, tokens, cost."""
    memory: dict[str, Any] = field(default_factory=dict)
    """The memory's description at the end: its state hash, insights, health."""
    budget_usd: float | None = None
    judge_passes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, as found."""
    keys: tuple[str, ...] = ()
    """The keys the file holds, in its order."""

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path | str = MANIFEST) -> Manifest:
        """The manifest `data` holds; RunDirectoryError when a field the readers rely on is of another kind."""
        known = {f.name for f in fields(cls)} - {"extra", "keys"}
        for key, kinds, name in (("identity", dict, "an object"), ("dataset_hash", (str, type(None)), "a string")):
            if key in data and not isinstance(data[key], kinds):
                raise RunDirectoryError(f"{source}: its {key} is not {name}; restore the file from a copy, or move "
                                        "the run directory away")
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known}, keys=tuple(data))

    def to_json(self) -> dict[str, Any]:
        """The manifest as the file holds it: the keys it was read with (and those set since), in their order."""
        return {k: self.extra[k] if k in self.extra else getattr(self, k) for k in self.keys}

    def updated(self, **changes: Any) -> Manifest:
        """This manifest with `changes` set (as a dict's update: a new key goes last)."""
        return Manifest.from_json({**self.to_json(), **changes})


class RunFiles:
    """A run directory's files, read-only, each read once when first asked for: what a reader beside a running run
    may do (a torn last line of records.jsonl is skipped and left for the run's writer to cut)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.stamp = self.current_stamp()  # before any read: a change after it shows in the next stamp
        self.manifest_path = self.path / MANIFEST
        self.records_path = self.path / RECORDS
        self.journal_path = self.path / JUDGMENTS

    def current_stamp(self) -> dict[str, list[int] | None]:
        """Size and modification time (ns) of each WATCHED file, None when absent: equal stamps, same files."""
        stamp: dict[str, list[int] | None] = {}
        for name in WATCHED:
            try:
                found = (self.path / name).stat()
                stamp[name] = [found.st_size, found.st_mtime_ns]
            except (FileNotFoundError, NotADirectoryError):
                stamp[name] = None
        return stamp

    @property
    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    @property
    def has_records(self) -> bool:
        return self.records_path.is_file()

    @cached_property
    def manifest(self) -> Manifest:
        """manifest.json (empty when there is none); a damaged one is a one-line RunDirectoryError."""
        return Manifest.from_json(read_json_object(self.manifest_path, missing={}), self.manifest_path)

    @cached_property
    def _scanned(self) -> tuple[list[Record], TornLine | None]:
        return scan_records(self.records_path)

    @property
    def records(self) -> list[Record]:
        """The finished records of records.jsonl ([] without one); a damaged line stops with its line number."""
        return self._scanned[0]

    @property
    def torn(self) -> TornLine | None:
        """records.jsonl's torn last line, skipped by `records`, if it has one."""
        return self._scanned[1]

    def finished_keys(self) -> set[str]:
        """Keys of the records an earlier attempt finished (those that ended in an error are retried)."""
        return {r.key for r in self.records if not r.error}

    def written(self) -> int:
        """Records written so far, without reading them: complete non-empty lines (one being written counts once
        written)."""
        try:
            lines = self.records_path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return 0
        return sum(1 for line in lines[:-1] if line.strip())

    def summary(self) -> dict[str, Any]:
        """summary.json ({} when there is none)."""
        return read_json_object(self.path / SUMMARY, missing={})

    def health(self) -> list[dict[str, Any]]:
        """memory/health.jsonl: a row per learning round ([] without a learning memory)."""
        return read_lines(self.path / MEMORY / HEALTH, repair=False)

    def snapshot(self, name: str = FINAL, part: str = SNAPSHOT_INSIGHTS) -> list[dict[str, Any]]:
        """One file of a memory snapshot (`epoch_snapshot(n)` or FINAL): insights, ops or traces, a row each."""
        return read_lines(self.path / MEMORY / name / part, repair=False)
