"""Run directories -> `Run`s and one tidy DataFrame: a row per record x judgment (judge None without verdicts).

Per record: `error` is the record's own error (a stage failed after its retries; the record is retried on
resume), `advised` says the coder was shown advice, `advice_error` why a memory gave none
(`recommendation.error`, e.g. an unusable agent reply). `api_labels` are the documented APIs the problem's
reference solution uses and `api_hits` those of them the advice names (`recommendation.api_labels`/`api_hits`), each
as one space-separated string: "" for none, None when the record's advice was not labelled or not checked.
"""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from spark_eval.records import Judgment, Record, RunDirectoryError
from spark_eval.records.run import Manifest, RunFiles, holds_records
from spark_eval.stats.base import REFERENCE, ResultsError

log = logging.getLogger(__name__)

COLUMNS = (
    "experiment", "run_dir", "model", "memory", "seed", "leaky", "key", "order", "problem_id", "library",
    "perturbation_type", "family", "epoch", "repeat", "status", "passed", "error", "advised", "advice_error",
    "abstained", "rec_leak", "memory_hash",
    "coder_input_tokens", "coder_output_tokens", "coder_cost_usd", "coder_latency_s", "coder_cached",
    "judge", "kind", "judge_repeat", "score", "band", "parse_error",
    "judge_input_tokens", "judge_output_tokens", "judge_cost_usd",
    "api_labels", "api_hits",
)


_NO_JUDGMENT = {"judge": None, "kind": None, "judge_repeat": np.nan, "score": np.nan, "band": None,
                "parse_error": None, "judge_input_tokens": np.nan, "judge_output_tokens": np.nan,
                "judge_cost_usd": np.nan}


@dataclass(frozen=True)
class Run:
    """One run directory, read once."""

    path: Path
    experiment: str
    """`experiment_name` of the run's config (the parent folder's name when the manifest lacks it)."""
    model: str
    memory: str
    seed: int
    leaky: bool
    """The memory was built with access to reference answers (manifest `leaky`, or any record's `leaky`)."""
    manifest: Manifest
    records: list[Record]
    health: list[dict[str, Any]]
    """`memory/health.jsonl`: one row per learning round (empty without a learning memory)."""

    @property
    def label(self) -> str:
        return f"{self.model}/{self.memory}/s{self.seed}"


def find_run_dirs(results: str | Path | Sequence[str | Path]) -> list[Path]:
    """Folders holding records.jsonl among the paths or glob patterns given, sorted; ResultsError if none."""
    patterns = [results] if isinstance(results, (str, Path)) else list(results)
    found = {Path(p) for pattern in patterns if str(pattern) for p in glob.glob(str(pattern))}
    runs = sorted(p for p in found if holds_records(p))
    if not runs:
        shown = ", ".join(str(p) for p in patterns) or "(nothing)"
        raise ResultsError(f"no run directory (a folder with records.jsonl) matches results={shown}; "
                           "give a glob of run directories, e.g. results='results/<experiment>/*'")
    return runs


def load_run(path: Path) -> Run | None:
    """The run in `path`, or None when it has no records yet; RunDirectoryError naming the file, its line and the
    fix when one of its files is damaged."""
    files = RunFiles(path)
    records = files.records
    if not records:
        log.warning("%s has no records yet; left out", path)
        return None
    manifest = files.manifest
    first = records[0]
    return Run(
        path=path,
        experiment=str(manifest.identity.get("experiment_name") or path.parent.name),
        model=first.model, memory=first.memory, seed=first.seed,
        leaky=bool(manifest.leaky) or any(r.leaky for r in records),
        manifest=manifest, records=records, health=files.health(),
    )


def load_runs(results: str | Path | Sequence[str | Path]) -> list[Run]:
    """Every run the paths or globs match, sorted by condition (see `label_by_experiment` for runs of one condition
    in several experiments); two runs of one condition in one experiment are refused. A damaged run is left out
    and named in one warning; ResultsError when no run is left."""
    runs, damaged = [], []
    for path in find_run_dirs(results):
        try:
            run = load_run(path)
        except RunDirectoryError as e:
            log.warning("left out a damaged run: %s", e)
            damaged.append(e)
            continue
        runs += [run] if run is not None else []
    if not runs and damaged:
        raise ResultsError(f"no run matching results={results} can be read: {len(damaged)} damaged, the first: "
                           f"{damaged[0]}")
    if not runs:
        raise ResultsError(f"the run directories matching results={results} hold no records yet")
    check_one_benchmark(runs)
    seen: dict[tuple[str, str], Path] = {}
    for run in runs:
        if (run.experiment, run.label) in seen:
            raise ResultsError(f"{seen[run.experiment, run.label]} and {run.path} are both {run.label} of experiment "
                               f"{run.experiment}; narrow results= to one experiment directory holding it")
        seen[run.experiment, run.label] = run.path
    return sorted(label_by_experiment(runs), key=lambda r: (r.model, r.memory, r.seed))


def check_one_benchmark(runs: Sequence[Run], given: str = "results") -> None:
    """ResultsError unless every run that names its data used the same (problems are paired by id); `given` is the
    config key the runs came from."""
    benchmarks = {run.manifest.dataset_hash: run for run in runs if run.manifest.dataset_hash}
    if len(benchmarks) > 1:
        names = sorted(f"{run.manifest.identity.get('dataset.name', '?')} ({run.path})"
                       for run in benchmarks.values())
        fix = "a glob of one benchmark's runs" if given == "results" else "runs of one benchmark"
        raise ResultsError(f"{given}= holds runs of different benchmarks or data copies: {'; '.join(names)}; "
                           f"give {fix} (problems are paired by id within a benchmark)")


def label_by_experiment(runs: Sequence[Run]) -> list[Run]:
    """The runs, with a model that has one condition (memory and seed) in several experiments named
    `<model>@<experiment>` in every run of it, so each experiment's conditions stay apart and are compared with that
    experiment's own baseline. The reference solutions keep their name (they are the human line, never compared);
    their memory is named `<memory>@<experiment>` instead."""
    experiments: dict[tuple[str, str, int], set[str]] = {}
    for run in runs:
        experiments.setdefault((run.model, run.memory, run.seed), set()).add(run.experiment)
    shared = {model for (model, _, _), names in experiments.items() if len(names) > 1}
    return [run if run.model not in shared
            else replace(run, memory=f"{run.memory}@{run.experiment}") if run.model == REFERENCE
            else replace(run, model=f"{run.model}@{run.experiment}") for run in runs]


def tidy(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per record x judgment; a record without verdicts keeps one row with judge None."""
    rows = [row for run in runs for order, record in enumerate(run.records) for row in _rows(run, order, record)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"score": float, "passed": bool, "advised": bool, "abstained": bool, "leaky": bool,
                         "rec_leak": bool})


def load_frame(results: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """The tidy frame of every run the paths or globs match."""
    return tidy(load_runs(results))


def to_parquet(frame: pd.DataFrame, path: Path) -> None:
    """The tidy frame as Parquet (no index)."""
    frame.to_parquet(path, index=False)


def _rows(run: Run, order: int, record: Record) -> list[dict[str, Any]]:
    completion, advice = record.completion, record.recommendation
    base = {
        "experiment": run.experiment, "run_dir": str(run.path), "model": run.model, "memory": run.memory,
        "seed": run.seed, "leaky": run.leaky, "key": record.key, "order": order,
        "problem_id": record.problem_id, "library": record.library,
        "perturbation_type": record.perturbation_type, "family": record.family,
        "epoch": record.epoch, "repeat": record.repeat, "status": record.status,
        "passed": record.passed, "error": record.error or None,
        "advised": record.advised, "advice_error": (advice.error if advice else None) or None,
        "abstained": bool(advice and advice.abstained),
        "rec_leak": bool(advice and advice.leak_flag),
        "memory_hash": record.memory_hash,
        "api_labels": _api_names(advice.api_labels if advice else None),
        "api_hits": _api_names(advice.api_hits if advice else None),
        "coder_input_tokens": completion.input_tokens if completion else np.nan,
        "coder_output_tokens": completion.output_tokens if completion else np.nan,
        "coder_cost_usd": completion.cost_usd if completion else np.nan,
        "coder_latency_s": completion.latency_s if completion else np.nan,
        "coder_cached": completion.cached if completion else None,
    }
    if not record.judgments:
        return [{**base, **_NO_JUDGMENT}]
    return [{**base, **_judgment(j)} for j in record.judgments]


def _api_names(names: tuple[str, ...] | None) -> str | None:
    """API names as one string, space-separated ("" for none; None when not labelled or not checked)."""
    return None if names is None else " ".join(names)


def _judgment(j: Judgment) -> dict[str, Any]:
    usage = j.usage
    return {
        "judge": j.judge, "kind": j.kind, "judge_repeat": j.repeat,
        "score": np.nan if j.score is None else float(j.score), "band": j.band,
        "parse_error": j.parse_error,
        "judge_input_tokens": np.nan if usage.input_tokens is None else usage.input_tokens,
        "judge_output_tokens": np.nan if usage.output_tokens is None else usage.output_tokens,
        "judge_cost_usd": np.nan if usage.cost_usd is None else usage.cost_usd,
    }
