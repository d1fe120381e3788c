"""What flipped: per condition against its model's baseline, the problems whose verdict changed.

A problem's side counts as passed when its per-problem pass@1 value (stats.units: the mean over its scored
records, i.e. its epochs, samples and seeds) is at least PASSED (0.5). Of the problems the baseline passed
(`known`), `destroyed` are those the condition failed: known answers lost once the condition's context was
added; of the problems the baseline failed (`unknown`), `rescued` are those the condition passed. The rates
are destroyed/known and rescued/unknown. Their 95% CIs are the clustered bootstrap of stats.bootstrap over the
origin families that hold a problem of the denominator: whole families resampled, the rate of a resample the
ratio of its sums (flips over problems of the drawn families); NaN when the denominator is 0.

One row per pair of `compare.own_baseline_pairs` for metric `pass` and library ALL (the whole set), then one
row per library the pair covers; the rows of one pair's libraries sum to its ALL row.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spark_eval.stats.bootstrap import cluster_ci
from spark_eval.stats.compare import own_baseline_pairs

PASSED = 0.5
"""A problem's side passed when its per-problem pass@1 is at least this."""
ALL = "all"
"""The `library` of a pair's row over every problem."""
FLIP_COLUMNS = ("model", "condition", "baseline", "known", "destroyed", "destroyed_rate", "destroyed_ci_low",
                "destroyed_ci_high", "unknown", "rescued", "rescued_rate", "rescued_ci_low", "rescued_ci_high",
                "library")


def flip_table(units: dict[str, pd.DataFrame], options: Any) -> pd.DataFrame:
    """FLIP_COLUMNS: per model x condition (against `options.baseline`) the whole set (`library` ALL), then per
    library; empty when no condition has its model's baseline."""
    rows = []
    if "pass" in units:
        for _, model, condition, pairs in own_baseline_pairs({"pass": units["pass"]}, options.baseline):
            if not len(pairs):
                continue
            head = {"model": model, "condition": condition, "baseline": options.baseline}
            rows.append({**head, **flips(pairs, options), "library": ALL})
            for library, part in pairs.groupby("library", sort=True):
                rows.append({**head, **flips(part, options), "library": library})
    return pd.DataFrame(rows, columns=list(FLIP_COLUMNS))


def flips(pairs: pd.DataFrame, options: Any) -> dict[str, Any]:
    """Counts, rates and CIs of one pairing (`stats.units.paired`: condition and baseline per problem)."""
    known = (pairs["baseline"] >= PASSED).to_numpy()
    passed = (pairs["condition"] >= PASSED).to_numpy()
    families = pairs["family"].to_numpy()
    destroyed = _rate(~passed[known], families[known], options)
    rescued = _rate(passed[~known], families[~known], options)
    return {"known": int(known.sum()), "destroyed": int((~passed[known]).sum()), **_named("destroyed", destroyed),
            "unknown": int((~known).sum()), "rescued": int(passed[~known].sum()), **_named("rescued", rescued)}


def flipped_problems(pairs: pd.DataFrame) -> tuple[list[int], list[int]]:
    """(destroyed, rescued): the problem ids of one pairing that flipped each way, sorted."""
    known, passed = pairs["baseline"] >= PASSED, pairs["condition"] >= PASSED
    return (sorted(int(p) for p in pairs.loc[known & ~passed, "problem_id"]),
            sorted(int(p) for p in pairs.loc[~known & passed, "problem_id"]))


def _rate(flipped: np.ndarray, families: np.ndarray, options: Any) -> tuple[float, float, float]:
    if not len(flipped):
        return np.nan, np.nan, np.nan
    values = flipped.astype(float)
    low, high = cluster_ci(values, families, options.bootstrap, options.seed)
    return float(values.mean()), low, high


def _named(name: str, rate: tuple[float, float, float]) -> dict[str, float]:
    return dict(zip((f"{name}_rate", f"{name}_ci_low", f"{name}_ci_high"), rate))
