"""A multirun's progress in one line, from the process that started it: jobs finished and running, records done.

`SweepProgress` is a Hydra callback (registered in conf/hydra/default.yaml). In MULTIRUN mode a daemon thread
looks at the sweep directory every `interval_s` seconds and logs the line when it has changed, which is the only
sign of life the parent process gives while its jobs run elsewhere (`hydra/launcher=submitit_local`). RUN mode
is untouched. It only reads: a manifest it cannot parse (yet) is skipped until the next look. It also hides the
passwords of database URLs in the lines Hydra's launchers log for each job (`#0 : memory.store=postgresql://...`).
"""
from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from spark_eval.errors import UserError
from spark_eval.memory.store.base import mask_database_urls
from spark_eval.records.run import Manifest, RunFiles

log = logging.getLogger("spark_eval")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# The loggers of the launchers that log each job's overrides; any other logger of Hydra or its plugins that exists
# when the sweep starts is masked too.
LAUNCHER_LOGGERS = ("hydra._internal.core_plugins.basic_launcher",
                    "hydra_plugins.hydra_submitit_launcher.submitit_launcher")

# A job directory's manifest as it was when the sweep started: (inode, mtime in ns), keyed by the directory's name.
Baseline = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class JobProgress:
    name: str  # the job directory's name, <model>__<memory>__s<seed>
    status: str  # the manifest's: running | interrupted | finished
    done: int  # records in records.jsonl
    total: int  # problems x epochs x repeats


def progress_line(sweep_dir: Path | str, jobs_total: Optional[int], baseline: Optional[Baseline] = None) -> str:
    """`sweep results/demo: jobs 1/2 finished, 1 running; records 9/14` for the job directories of `sweep_dir`
    (only those whose manifest has changed since `baseline`, when given). Without `jobs_total`: `jobs 1 finished`.
    The records' total is that of the jobs that have started."""
    return SweepReader(sweep_dir, baseline).line(jobs_total)


def manifest_stamps(sweep_dir: Path | str) -> Baseline:
    """The manifests already in `sweep_dir`: a sweep counts a job directory only once its manifest has changed
    (every run rewrites it when it starts), so earlier sweeps into the same folder (other seeds, other memories)
    are not counted."""
    stamps = {}
    for job_dir in _job_dirs(Path(sweep_dir)):
        try:
            st = RunFiles(job_dir).manifest_path.stat()
        except OSError:
            continue
        stamps[job_dir.name] = (st.st_ino, st.st_mtime_ns)
    return stamps


def sweep_job_count(config: DictConfig) -> Optional[int]:
    """The number of jobs the BasicSweeper makes of `hydra.sweeper.params` and the command line's overrides
    (`hydra.overrides.task`): the product of each key's number of values, a later override of a key replacing an
    earlier one, as in the sweeper. None when it cannot tell (another sweeper, a glob, a range it cannot list)."""
    try:
        if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
            return None
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        arguments = [f"{key}={value}" for key, value in params.items()]
        arguments += [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=None) or []]
        values: dict[str, int] = {}
        for override in OverridesParser.create().parse_overrides(arguments):
            if not override.is_sweep_override():
                values[override.get_key_element()] = 1
            elif override.is_discrete_sweep():
                values[override.get_key_element()] = sum(1 for _ in override.sweep_string_iterator())
            else:
                return None  # an interval: the BasicSweeper refuses it
        return math.prod(values.values())
    except Exception:  # anything this cannot follow only costs the total
        return None


class SweepReader:
    """Reads a sweep directory: its job directories' manifests and how many records each has written."""

    def __init__(self, sweep_dir: Path | str, baseline: Optional[Baseline] = None) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.baseline = dict(baseline or {})

    def line(self, jobs_total: Optional[int]) -> str:
        return format_line(self.sweep_dir, self.jobs(), jobs_total)

    def jobs(self) -> list[JobProgress]:
        jobs = []
        for job_dir in _job_dirs(self.sweep_dir):
            try:
                job = self._job(job_dir)
            except (OSError, UserError, ValueError, TypeError, AttributeError):  # half-written or not ours: next look
                continue
            if job is not None:
                jobs.append(job)
        return jobs

    def _job(self, job_dir: Path) -> Optional[JobProgress]:
        files = RunFiles(job_dir)
        st = files.manifest_path.stat()
        if self.baseline.get(job_dir.name) == (st.st_ino, st.st_mtime_ns):
            return None  # untouched since the sweep started: an earlier sweep's, or this one's not yet begun
        manifest = files.manifest
        if not isinstance(manifest.status, str):
            return None
        problems = len(manifest.problem_ids or [])
        epochs, repeats = _epochs_repeats(job_dir, manifest)
        return JobProgress(job_dir.name, manifest.status, files.written(), problems * epochs * repeats)


def format_line(sweep_dir: Path | str, jobs: list[JobProgress], jobs_total: Optional[int]) -> str:
    statuses = [j.status for j in jobs]
    of = f"/{jobs_total}" if jobs_total is not None else ""
    parts = [f"jobs {statuses.count('finished')}{of} finished", f"{statuses.count('running')} running"]
    parts += [f"{statuses.count(s)} {s}" for s in sorted(set(statuses) - {"finished", "running"})]
    done, total = sum(j.done for j in jobs), sum(j.total for j in jobs)
    return f"sweep {shown_path(Path(sweep_dir))}: {', '.join(parts)}; records {done}/{total}"


class SweepProgress(Callback):
    """Logs the sweep's progress line (`progress_line`) every `interval_s` seconds when it has changed, and once
    more when the sweep ends (unless the last look already logged it). Only the process that runs the sweep does
    anything; jobs see a no-op callback."""

    def __init__(self, interval_s: float = 30.0) -> None:
        self.interval_s = float(interval_s)
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[threading.Event] = None
        self._sweep_dir: Optional[Path] = None
        self._jobs_total: Optional[int] = None
        self._baseline: Baseline = {}
        self._last: Optional[str] = None  # the line last logged

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_launch_lines()
        self._halt()
        if config.get("dry_run"):  # nothing runs: the plans are the output
            self._sweep_dir = None
            return
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        self._jobs_total = sweep_job_count(config)
        self._baseline = manifest_stamps(self._sweep_dir)
        self._last = None
        reader = SweepReader(self._sweep_dir, self._baseline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(reader, self._stop), name="spark_eval-sweep",
                                        daemon=True)
        self._thread.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._sweep_dir is None:
            return
        self._halt()
        line = _safe(progress_line, self._sweep_dir, self._jobs_total, self._baseline)  # a fresh, full look
        if line and line != self._last:
            log.info(line)
            self._last = line

    def _watch(self, reader: SweepReader, stop: threading.Event) -> None:
        last = _safe(reader.line, self._jobs_total)  # the sweep's start, nothing of it done: not worth a line
        while not stop.wait(self.interval_s):
            line = _safe(reader.line, self._jobs_total)
            if line and line != last:
                log.info(line)
                last = self._last = line

    def _halt(self) -> None:
        if self._thread is not None and self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=10)
        self._thread = self._stop = None

    def __getstate__(self) -> dict[str, Any]:
        """The submitit launcher pickles itself, callbacks included, for each job: without the thread."""
        return {**self.__dict__, "_thread": None, "_stop": None}


class DatabaseUrlMask(logging.Filter):
    """Hides the password of every database URL in a record's text (Hydra's launchers log each job's overrides,
    `memory.store=postgresql://user:secret@host/db` among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is logging's to report
            return True
        masked = mask_database_urls(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


def mask_launch_lines() -> None:
    """Put `DatabaseUrlMask` on the loggers of Hydra and its plugins. On the loggers, not on handlers: a launcher
    configures logging anew (new handlers) just before it logs its jobs, and a logger's filters stay."""
    names = {*LAUNCHER_LOGGERS, *(name for name in list(logging.root.manager.loggerDict)
                                  if name.split(".")[0] in ("hydra", "hydra_plugins"))}
    for name in sorted(names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DatabaseUrlMask) for f in logger.filters):
            logger.addFilter(DatabaseUrlMask())


def _safe(function: Any, *args: Any) -> Optional[str]:
    """A look at the files that fails for any reason is skipped: the thread never stops, the sweep never fails."""
    try:
        return function(*args)
    except Exception:
        log.debug("sweep progress: could not read the sweep directory", exc_info=True)
        return None


def _job_dirs(sweep_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _epochs_repeats(job_dir: Path, manifest: Manifest) -> tuple[int, int]:
    """From the manifest's identity (`pipeline.epochs`, `pipeline.samples`, `pipeline.repeats` before the rename),
    else the job's .hydra/config.yaml, else 1 each."""
    identity = manifest.identity
    epochs, repeats = identity.get("pipeline.epochs"), identity.get("pipeline.samples", identity.get("pipeline.repeats"))
    if not (_count(epochs) and _count(repeats)):
        try:
            pipeline = (yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text()) or {}).get("pipeline") or {}
        except (OSError, ValueError, AttributeError, yaml.YAMLError):
            pipeline = {}
        pipeline = pipeline if isinstance(pipeline, dict) else {}
        epochs = epochs if _count(epochs) else pipeline.get("epochs")
        repeats = repeats if _count(repeats) else pipeline.get("samples", pipeline.get("repeats"))
    return (epochs if _count(epochs) else 1), (repeats if _count(repeats) else 1)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def shown_path(path: Path) -> str:
    """Relative to the working directory when inside it (`results/demo`), else as given."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
