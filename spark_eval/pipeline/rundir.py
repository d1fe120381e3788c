"""The writing side of a run directory: its identity, lock, manifest and records.jsonl (append + sync, the source of
truth); `records/run.py: RunFiles` reads them."""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from spark_eval.config import (IDENTITY_ABSENT, IDENTITY_RENAMED, MODEL_CALL_SETTINGS, PROJECT_RELATIVE_KEYS,
                               PROJECT_ROOT, RESULT_NEUTRAL_KEYS, RESULT_NEUTRAL_LEAVES, hydra_subdir)
from spark_eval.memory.store.base import is_database_url, shown_url
from spark_eval.models.replay import AnswersFile, answers_sha256
from spark_eval.models.weights import weights_sha256
from spark_eval.records import Record, RunDirectoryError, append_record, rewrite_records, write_json
from spark_eval.records.run import LOCK, RunFiles

log = logging.getLogger(__name__)

SHOWN_CHARS = 200
"""A refusal names the keys alone when their changes are longer than this (a panel's model configs once made a
line of 6,000 characters)."""
SHOWN_KEYS = 12
ANSWERS_FILE = f"{AnswersFile.__module__}.{AnswersFile.__name__}"


def result_identity(cfg: DictConfig, **extra: Any) -> dict[str, Any]:
    """Everything that changes results, flattened to `dotted.key: value`; resume refuses to mix these. Content, not
    places: a weights or answers file counts by its hash, locations, prices and how models are called not at all."""
    return _identity(OmegaConf.to_container(cfg, resolve=True), extra, hash_files=True)


def identity_changes(before: dict[str, Any], now: dict[str, Any], keys: Any = None) -> dict[str, str]:
    """`key: "old -> new"` for each key (of both identities, or `keys`) whose value differs. The earlier identity is
    read under today's rules: a setting's old name (IDENTITY_RENAMED) as its new one, and what no longer counts
    (a location, a price, a setting at its old meaning) left out."""
    before = _identity(_unflatten({IDENTITY_RENAMED.get(k, k): v for k, v in before.items()}), {}, hash_files=False)
    keys = sorted(set(before) | set(now) if keys is None else keys)
    return {k: f"{before.get(k)!r} -> {now.get(k)!r}" for k in keys if before.get(k) != now.get(k)}


def shown_changes(changes: dict[str, str], spill: bool = True) -> str:
    """The changes as `key: old -> new`; past SHOWN_CHARS the keys alone, and (`spill`) each change in full in a
    temporary file the text names (the run directory stays as it was)."""
    full = "; ".join(f"{k}: {v}" for k, v in changes.items())
    if len(full) <= SHOWN_CHARS:
        return full
    groups = _key_groups(changes)
    keys = ", ".join(groups[:SHOWN_KEYS]) + (f" and {len(groups) - SHOWN_KEYS} more" if len(groups) > SHOWN_KEYS
                                            else "")
    if not spill:
        return f"differs in {keys}"
    path = Path(tempfile.gettempdir()) / f"spark_eval-changes-{hashlib.sha256(full.encode()).hexdigest()[:12]}.txt"
    path.write_text("".join(f"{k}: {v}\n" for k, v in changes.items()))
    return f"differs in {keys}; each value in {path}"


def _key_groups(keys: Any) -> list[str]:
    """The keys, those of one node three levels down named once (`judge.models.quality.*`)."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(".".join(key.split(".")[:3]), []).append(key)
    return [found[0] if len(found) == 1 else f"{node}.*" for node, found in groups.items()]


def _identity(tree: Any, extra: dict[str, Any], hash_files: bool) -> dict[str, Any]:
    flat = {k: _placeless(k, v) for k, v in _flatten(_content(tree, hash_files))
            if not _neutral(k) and not (k in IDENTITY_ABSENT and v == IDENTITY_ABSENT[k])}
    if extra:  # an empty mapping would flatten to a key of its own
        flat.update(_flatten(extra))
    return dict(sorted(flat.items()))


def _placeless(key: str, value: Any) -> Any:
    """A database URL without its password; a run directory or store file named by PROJECT_RELATIVE_KEYS (or a list
    of them) relative to the project folder when it lies inside it."""
    if isinstance(value, str) and is_database_url(value):
        return shown_url(value)
    if key in PROJECT_RELATIVE_KEYS and isinstance(value, list):
        return [_placeless(key, v) for v in value]
    if key in PROJECT_RELATIVE_KEYS and isinstance(value, str) and Path(value).is_absolute():
        path = Path(os.path.normpath(value))
        return path.relative_to(PROJECT_ROOT).as_posix() if path.is_relative_to(PROJECT_ROOT) else value
    return value


def _content(node: Any, hash_files: bool) -> Any:
    """The config tree without locations (RESULT_NEUTRAL_LEAVES, in lists too), and each model config as
    `_model_content`, wherever it sits: the coder, the memory's agent and learner, every judge of a panel."""
    if isinstance(node, list):
        return [_content(v, hash_files) for v in node]
    if not isinstance(node, dict):
        return node
    if str(node.get("_target_", "")).startswith("spark_eval.models."):
        node = _model_content(node, hash_files)
    return {k: _content(v, hash_files) for k, v in node.items() if k not in RESULT_NEUTRAL_LEAVES}


def _model_content(node: dict[str, Any], hash_files: bool) -> dict[str, Any]:
    """A model config as what decides its replies: without how its calls are made and what they cost
    (MODEL_CALL_SETTINGS), its weights as their content hash (models/weights.py: the file that loads), an answers
    file as its own. `hash_files=False` reads an earlier identity, which holds a hash already or cannot get one."""
    node = {k: v for k, v in node.items() if k not in MODEL_CALL_SETTINGS}
    if isinstance(node.get("weights"), dict):
        spec = node["weights"]
        node["weights"] = {"sha256": weights_sha256(spec, node.get("weights_dir") or "") if hash_files
                           else spec.get("sha256")}
    if node.get("_target_") == ANSWERS_FILE and "path" in node:
        path = node.pop("path")
        node["sha256"] = answers_sha256(path) if hash_files else None
    return node


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _neutral(key: str) -> bool:
    return any(key == n or key.startswith(n + ".") for n in RESULT_NEUTRAL_KEYS)


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class RunLock:
    """An exclusive lock on a run directory: one writer at a time (a run, or stage=judge on it).

    `flock` on `<run dir>/.lock`, held until `release()` or the process ends (the kernel drops it, so a
    killed run never leaves a stale lock). The file names the holder's pid and command for the refusal.
    """

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = Path(path) / LOCK
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
        except OSError as e:  # ENOLCK, EOPNOTSUPP...: a file system without flock (some network mounts)
            self._file.close()
            raise RunDirectoryError(
                f"{path} is on a file system that cannot lock files ({e.strerror or e}); put the results on a "
                "local file system: paths.results=<local folder> (or hydra.run.dir=<local folder>)"
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
    """One run's files, locked for this process: the writing side of `RunFiles`. It opens the files once (those
    given, read before the lock, unless they changed since) and keeps what it writes, so the manifest and the
    records it holds are the files'. Appends are flushed and synced per record, so a killed run loses nothing
    finished. With an `identity` (a run) the directory must hold a run of that identity, or none; without one
    (stage=judge) it must hold a run, and the manifest's identity is left as it is."""

    def __init__(self, path: Path, identity: dict[str, Any] | None = None, files: RunFiles | None = None,
                 purpose: str = "a run") -> None:
        self.path = Path(path)
        self.identity = identity
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.path, purpose)
        try:
            self.files = files if files is not None and files.stamp == files.current_stamp() else RunFiles(self.path)
            self.records_path, self.manifest_path = self.files.records_path, self.files.manifest_path
            if identity is not None:
                self._check_resumable(identity)
            self.manifest = self.files.manifest
            if self.files.torn is not None:
                self.files.torn.cut()
            self.records = list(self.files.records)
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def _check_resumable(self, identity: dict[str, Any]) -> None:
        if not self.files.has_manifest:
            if self.files.has_records and self.records_path.stat().st_size:
                raise RunDirectoryError(f"{self.records_path} exists without a manifest; move it away to start anew")
            return
        changed = identity_changes(self.files.manifest.identity, identity)
        if changed:
            raise RunDirectoryError(
                f"{self.path} holds a run with a different config ({shown_changes(changed)}); "
                "undo the change, or pick another seed, experiment_name or hydra.run.dir"
            )

    def finished_summary(self) -> dict[str, Any] | None:
        """The summary of a run that finished (every record, none in error, and the memory's last round learned),
        else None: its command again changes nothing in it, neither its manifest's times and commit nor its Hydra
        copy. A run with records in error is not finished: its command retries them."""
        if self.manifest.status != "finished":
            return None
        summary = self.files.summary()
        return summary if summary and not summary.get("errors") else None

    def touch(self) -> None:
        """Move the manifest's mtime, not its content: a sweep's progress line (pipeline/sweep.py) counts a job whose
        manifest changed since the sweep began, so a finished job that this sweep found done counts as finished."""
        os.utime(self.manifest_path)

    def drop_errored(self) -> list[Record]:
        """Rewrite records.jsonl without records that ended in an error, so they are retried; returns the rest."""
        kept = [r for r in self.records if not r.error]
        if len(kept) < len(self.records):
            log.info("retrying %d records that ended in an error", len(self.records) - len(kept))
            self.rewrite(kept)
        return kept

    def append(self, record: Record) -> None:
        append_record(self.records_path, record)
        self.records.append(record)

    def rewrite(self, records: list[Record]) -> None:
        """Replace records.jsonl with `records`, atomically."""
        rewrite_records(self.records_path, records)
        self.records = list(records)

    def write_manifest(self, **fields: Any) -> None:
        """Set `fields` in the manifest (and, for a run, its identity and that identity's hash)."""
        if self.identity is not None:
            fields.update(identity=self.identity, config_hash=identity_hash(self.identity))
        self.manifest = self.manifest.updated(**fields)
        write_json(self.manifest_path, self.manifest.to_json())


def keep_hydra_copy(path: Path, cfg: DictConfig) -> None:
    """Hydra's copy of the command's config (config.yaml, hydra.yaml, overrides.yaml) in the stage's folder of the
    run directory (`.hydra/`, `.hydra-judge/`), written by a stage that holds the directory's lock, once the run's
    identity is checked: Hydra would write it before either (conf/hydra: `output_subdir`), so a refused command
    would rewrite the provenance of the run it was refused. Outside a Hydra command for `path`, nothing."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or Path(HydraConfig.get().runtime.output_dir).resolve() != path.resolve():
        return
    folder = path / hydra_subdir(str(cfg.stage))
    folder.mkdir(exist_ok=True)
    hydra: Any = HydraConfig.instance().cfg  # the root node: `hydra` and nothing else
    for name, node in (("config.yaml", cfg), ("hydra.yaml", hydra), ("overrides.yaml", hydra.hydra.overrides.task)):
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


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
