"""The run directory of a run: its identity, lock, manifest and records.jsonl (append + sync, the source of truth)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from spark_eval.config import (IDENTITY_ABSENT, IDENTITY_RENAMED, MODEL_CALL_SETTINGS, PROJECT_ROOT,
                               RESULT_NEUTRAL_KEYS, RESULT_NEUTRAL_LEAVES)
from spark_eval.memory.store import is_database_url, shown_url
from spark_eval.records import (Record, RunDirectoryError, append_record, read_json_object, read_records,
                                rewrite_records, write_json)

log = logging.getLogger(__name__)


def result_identity(cfg: DictConfig, **extra: Any) -> dict[str, Any]:
    """Everything that changes results, flattened to `dotted.key: value`; resume refuses to mix these."""
    resolved = _without_call_settings(OmegaConf.to_container(cfg, resolve=True))
    flat = {k: shown_url(v) if isinstance(v, str) and is_database_url(v) else v for k, v in _flatten(resolved)
            if not _neutral(k) and not (k in IDENTITY_ABSENT and v == IDENTITY_ABSENT[k])}
    if extra:  # an empty mapping would flatten to a key of its own
        flat.update(_flatten(extra))
    return dict(sorted(flat.items()))


def identity_changes(before: dict[str, Any], now: dict[str, Any], keys: Any = None) -> list[str]:
    """`key: old -> new` for each key (of both identities, or `keys`) whose value differs; a run made under a
    setting's old name (IDENTITY_RENAMED) reads as the new one."""
    before = {IDENTITY_RENAMED.get(k, k): v for k, v in before.items()}
    keys = sorted(set(before) | set(now) if keys is None else keys)
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys if before.get(k) != now.get(k)]


def _without_call_settings(node: Any) -> Any:
    """The config tree without how each model's calls are made (MODEL_CALL_SETTINGS), wherever a model
    config sits: the coder, the memory's agent and learner, every judge of a panel."""
    if isinstance(node, list):
        return [_without_call_settings(v) for v in node]
    if not isinstance(node, dict):
        return node
    is_model = str(node.get("_target_", "")).startswith("spark_eval.models.")
    return {k: _without_call_settings(v) for k, v in node.items() if not (is_model and k in MODEL_CALL_SETTINGS)}


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _neutral(key: str) -> bool:
    if key.rsplit(".", 1)[-1] in RESULT_NEUTRAL_LEAVES:
        return True
    return any(key == n or key.startswith(n + ".") for n in RESULT_NEUTRAL_KEYS)


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class RunLock:
    """An exclusive lock on a run directory: one writer at a time (a run, or stage=judge on it).

    `flock` on `<run dir>/.lock`, held until `release()` or the process ends (the kernel drops it, so a
    killed run never leaves a stale lock). The file names the holder's pid and command for the refusal.
    """

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = Path(path) / ".lock"
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunDirectoryError(
                f"{path} is in use by {holder}; wait for it to finish or stop it, then run this again"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"process {os.getpid()} ({purpose})")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()


class RunDirectory:
    """One run's files, locked for this process. Appends are flushed and synced per record, so a killed run
    loses nothing finished."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.identity = identity
        self.records_path = self.path / "records.jsonl"
        self.manifest_path = self.path / "manifest.json"
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.path, "a run")
        try:
            self._check_resumable()
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def _check_resumable(self) -> None:
        if not self.manifest_path.exists():
            if self.records_path.exists() and self.records_path.stat().st_size:
                raise RunDirectoryError(f"{self.records_path} exists without a manifest; move it away to start anew")
            return
        changed = identity_changes(read_json_object(self.manifest_path).get("identity", {}), self.identity)
        if changed:
            detail = "; ".join(changed[:8])
            raise RunDirectoryError(
                f"{self.path} holds a run with a different config ({detail}); "
                "undo the change, or pick another seed, experiment_name or hydra.run.dir"
            )

    def load_records(self) -> list[Record]:
        return read_records(self.records_path)

    def drop_errored(self, records: list[Record]) -> list[Record]:
        """Rewrite records.jsonl without records that ended in an error, so they are retried; returns the rest."""
        kept = [r for r in records if not r.error]
        if len(kept) < len(records):
            log.info("retrying %d records that ended in an error", len(records) - len(kept))
            rewrite_records(self.records_path, kept)
        return kept

    def append(self, record: Record) -> None:
        append_record(self.records_path, record)

    def write_manifest(self, **fields: Any) -> None:
        manifest = read_json_object(self.manifest_path, missing={})
        manifest.update(fields, identity=self.identity, config_hash=identity_hash(self.identity))
        write_json(self.manifest_path, manifest)


def git_state() -> dict[str, Any]:
    """The commit the harness ran from, and whether its work tree had changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    except OSError:
        return {"git_sha": None, "git_dirty": None}
    if sha.returncode != 0:
        return {"git_sha": None, "git_dirty": None}
    return {"git_sha": sha.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
