"""Paired comparisons of each model's conditions with its baseline, equivalence claims, and breakdowns.

Every row pairs per-problem values (see stats.units), so `n` counts problems; intervals and tests treat the
origin family as the independent unit. `metric` is `pass` (pass@1), `quality`, or `pass@k` (k > 1) when runs
drew several samples per problem; each is compared the same way. Every row states its power: `mde`, the smallest
true difference its design detects (stats.power), in the unit of `mean_diff`; every tested row its `verdict`.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd

from spark_eval.stats.power import ALPHA, mde
from spark_eval.stats.bootstrap import cluster_ci
from spark_eval.stats.paired import cluster_se, holm, rank_biserial, sign_flip_name, sign_flip_p, tost_cluster_p
from spark_eval.stats.base import REFERENCE
from spark_eval.stats.units import paired
from spark_eval.stats.validity import comparison_signals

COMPARISON_COLUMNS = (
    "model", "condition", "baseline", "metric", "judge", "judge_signal", "n", "families", "baseline_mean", "condition_mean",
    "mean_diff", "ci_low", "ci_high", "mde", "test", "p_value", "p_holm", "verdict", "rank_biserial", "margin",
    "leaky",
)
BREAKDOWN_COLUMNS = ("model", "condition", "baseline", "metric", "by", "group", "n", "mean_diff", "ci_low", "ci_high",
                     "mde", "leaky")
VERDICTS = ("better", "worse", "equivalent", "inconclusive")
"""`verdict`: better or worse (the sign of mean_diff) when p_holm < ALPHA, equivalent for a TOST row when p_holm <
ALPHA, otherwise inconclusive (which is no evidence that the arms are alike)."""
BREAKDOWNS = ("library", "perturbation_type")
TOST = "TOST, cluster-robust t over origin families"


def condition_pairs(units: pd.DataFrame, baseline: str) -> Iterator[tuple[str, str]]:
    """(model, condition) for every model except the reference that has both `baseline` and another memory."""
    present = set(zip(units["model"], units["memory"]))
    for model, memory in sorted(present):
        if model != REFERENCE and memory != baseline and (model, baseline) in present:
            yield model, memory


def difference(pairs: pd.DataFrame, options: Any) -> dict[str, Any]:
    """Sizes, means and the mean difference (condition - baseline) with its CI clustered by origin family, and
    the MDE: the smallest true difference a two-sided test at ALPHA detects with stats.power.POWER (80%), from
    the cluster-robust standard error of the mean difference over its families (`cluster_se`, `stats.power.mde`;
    NaN below two families)."""
    diffs = (pairs["condition"] - pairs["baseline"]).to_numpy()
    low, high = cluster_ci(diffs, pairs["family"], options.bootstrap, options.seed)
    _, se, families = cluster_se(diffs, pairs["family"])
    return {"n": len(pairs), "families": pairs["family"].nunique(), "baseline_mean": pairs["baseline"].mean(),
            "condition_mean": pairs["condition"].mean(), "mean_diff": diffs.mean(), "ci_low": low, "ci_high": high,
            "mde": mde(se, families)}


def compare(pairs: pd.DataFrame, options: Any) -> dict[str, Any]:
    """The difference (see `difference`), the sign-flip test over origin families and the rank-biserial."""
    diffs = (pairs["condition"] - pairs["baseline"]).to_numpy()
    return {**difference(pairs, options), "margin": np.nan, "test": sign_flip_name(diffs, pairs["family"]),
            "p_value": sign_flip_p(diffs, pairs["family"], options.seed), "rank_biserial": rank_biserial(diffs)}


def own_baseline_pairs(units: dict[str, pd.DataFrame], baseline: str) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(metric, model, condition, pairs): each condition paired with the same model's baseline, per metric."""
    for metric, table in units.items():
        for model, condition in condition_pairs(table, baseline):
            yield metric, model, condition, paired(table, model, condition, model, baseline)


def comparisons(units: dict[str, pd.DataFrame], judges: dict[str, str | None], leaky: dict[tuple[str, str], bool],
                options: Any, records: pd.DataFrame) -> pd.DataFrame:
    """One row per paired comparison of the report (see COMPARISON_COLUMNS), Holm-adjusted across all rows, each
    with its verdict (see VERDICTS) and, on a quality row, what the quality judge's AUROC against execution on the
    scored `records` (stats.units.record_table) of both arms allows (`judge_signal`, validity.SIGNALS)."""
    rows = [{"model": model, "condition": condition, "baseline": options.baseline, "metric": metric,
             "judge": judges.get(metric) or "", "leaky": leaky[(model, condition)], **compare(pairs, options)}
            for metric, model, condition, pairs in own_baseline_pairs(units, options.baseline) if len(pairs)]
    if "quality" in units:
        rows += equivalences(units["quality"], judges["quality"] or "", leaky, options)
    frame = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in ("judge_signal", "p_holm", "verdict")])
    frame.insert(COMPARISON_COLUMNS.index("judge_signal"), "judge_signal",
                 pd.Series(comparison_signals(frame, records, judges.get("quality")), index=frame.index, dtype=object))
    frame.insert(COMPARISON_COLUMNS.index("p_holm"), "p_holm", holm(frame["p_value"]))
    verdicts = [verdict(diff, p, equivalence=bool(np.isfinite(margin)))
                for diff, p, margin in zip(frame["mean_diff"], frame["p_holm"], frame["margin"])]
    frame.insert(COMPARISON_COLUMNS.index("verdict"), "verdict", pd.Series(verdicts, index=frame.index, dtype=object))
    return frame


def verdict(mean_diff: float, p_holm: float, equivalence: bool) -> str:
    """What a row lets one say (VERDICTS): a TOST row (`equivalence`) `equivalent` when p_holm < ALPHA; any other
    row `better` or `worse` by the sign of mean_diff when p_holm < ALPHA; otherwise (a missing p too)
    `inconclusive`."""
    if not p_holm < ALPHA:
        return "inconclusive"
    if equivalence:
        return "equivalent"
    return "better" if mean_diff > 0 else "worse"


def equivalences(units: pd.DataFrame, judge: str, leaky: dict[tuple[str, str], bool], options: Any) -> list[dict]:
    """"Matches" claims: each model's condition vs every other model's baseline that scores higher, by TOST over
    origin families (see `tost_cluster_p`)."""
    means = units[units["memory"] == options.baseline].groupby("model")["value"].mean()
    rows = []
    for model, condition in condition_pairs(units, options.baseline):
        for other, other_mean in means.items():
            if other in (model, REFERENCE) or not other_mean > means.get(model, np.inf):
                continue
            pairs = paired(units, model, condition, other, options.baseline)
            if len(pairs) < 2:
                continue
            diffs = (pairs["condition"] - pairs["baseline"]).to_numpy()
            rows.append({**difference(pairs, options), "model": model, "condition": condition,
                         "baseline": f"{other}/{options.baseline}", "metric": "quality", "judge": judge,
                         "leaky": leaky[(model, condition)], "test": f"{TOST} (margin {options.tost_margin:g})",
                         "rank_biserial": np.nan, "margin": options.tost_margin,
                         "p_value": tost_cluster_p(diffs, pairs["family"], options.tost_margin)})
    return rows


def breakdown(units: dict[str, pd.DataFrame], leaky: dict[tuple[str, str], bool], options: Any) -> pd.DataFrame:
    """Mean difference with its clustered CI and MDE per library and per perturbation type (descriptive, no tests,
    so no verdict)."""
    rows = []
    for metric, model, condition, pairs in own_baseline_pairs(units, options.baseline):
        for by in BREAKDOWNS:
            for group, part in pairs.groupby(by, sort=True):
                found = difference(part, options)
                rows.append({"model": model, "condition": condition, "baseline": options.baseline, "metric": metric,
                             "by": by, "group": group, "leaky": leaky[(model, condition)],
                             **{k: found[k] for k in ("n", "mean_diff", "ci_low", "ci_high", "mde")}})
    return pd.DataFrame(rows, columns=list(BREAKDOWN_COLUMNS))
