"""Paired tests on per-problem values: Wilcoxon signed-rank, rank-biserial, McNemar, TOST, Holm."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata, wilcoxon

WILCOXON = "Wilcoxon signed-rank (Pratt)"
MCNEMAR = "McNemar exact"


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (condition - baseline).

    Zeros are ranked and then dropped (Pratt), which keeps the many ties of 1-5 scores from inflating
    significance; ties get average ranks. The p-value is scipy's `method="auto"`: exhaustive permutations
    up to 13 differences with ties or zeros (50 without), the tie-corrected normal approximation beyond.
    All-zero differences give p = 1: every sign flip leaves the statistic where it is.
    """
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) == 0:
        return float("nan")
    if not diffs.any():
        return 1.0
    return float(wilcoxon(diffs, zero_method="pratt", correction=False, method="auto").pvalue)


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation: (R+ - R-) / (R+ + R-) over the ranks of the non-zero |d|.

    1 means every non-zero difference favours the condition, -1 the baseline; NaN when all are zero.
    """
    diffs = np.asarray(diffs, dtype=float)
    diffs = diffs[diffs != 0]
    if len(diffs) == 0:
        return float("nan")
    ranks = rankdata(np.abs(diffs))
    return float((ranks[diffs > 0].sum() - ranks[diffs < 0].sum()) / ranks.sum())


def mcnemar_p(baseline: Sequence[bool], condition: Sequence[bool]) -> float:
    """McNemar's exact test on paired pass/fail outcomes (binomial on the discordant pairs)."""
    from statsmodels.stats.contingency_tables import mcnemar

    base, cond = np.asarray(baseline, dtype=bool), np.asarray(condition, dtype=bool)
    if len(base) == 0:
        return float("nan")
    table = [[int(np.sum(base & cond)), int(np.sum(base & ~cond))],
             [int(np.sum(~base & cond)), int(np.sum(~base & ~cond))]]
    return float(mcnemar(table, exact=True).pvalue)


def tost_paired_p(condition: Sequence[float], baseline: Sequence[float], margin: float) -> float:
    """TOST equivalence p (paired t): small means the mean difference lies within +-margin."""
    from statsmodels.stats.weightstats import ttost_paired

    if len(condition) < 2:
        return float("nan")
    p, _, _ = ttost_paired(np.asarray(condition, dtype=float), np.asarray(baseline, dtype=float), -margin, margin)
    return float(p)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values over the finite ones; NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(pvalues), np.nan)
    finite = np.isfinite(pvalues)
    if finite.any():
        adjusted[finite] = multipletests(pvalues[finite], method="holm")[1]
    return adjusted
