"""Paired tests on per-problem differences that respect origin families: sign flips, cluster TOST, Holm.

DS-1000's problems are perturbations of a few hundred originals, and the perturbations of one original
(its origin family) succeed or fail together. Each test below therefore treats a family, not a problem, as
the independent unit, as the clustered bootstrap intervals do.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

EXACT_FAMILIES = 16
"""Up to this many families with a non-zero total, every sign flip is enumerated (2**16 = 65,536)."""
FLIPS = 10_000
"""Random sign flips drawn beyond EXACT_FAMILIES."""
SIGN_FLIP = "paired sign-flip mid-p over origin families"
_CHUNK = 1_000
_TOLERANCE = 1e-9
"""Totals and statistics closer than this are equal (sums of averaged scores carry rounding noise)."""


def family_totals(diffs: Sequence[float], families: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per family, in sorted order of the names: the sum of its differences and its number of problems."""
    names, index = np.unique(np.asarray(families, dtype=str), return_inverse=True)
    totals = np.bincount(index, weights=np.asarray(diffs, dtype=float), minlength=len(names))
    return totals, np.bincount(index, minlength=len(names)).astype(float)


def sign_flip_name(diffs: Sequence[float], families: Sequence[str]) -> str:
    """The `test` label of `sign_flip_p` on these differences: every flip enumerated, or FLIPS drawn."""
    totals, _ = family_totals(diffs, families)
    exact = int(np.sum(np.abs(totals) > _TOLERANCE)) <= EXACT_FAMILIES
    return f"{SIGN_FLIP} ({'exact' if exact else f'{FLIPS} random flips'})"


def sign_flip_p(diffs: Sequence[float], families: Sequence[str], seed: int) -> float:
    """Two-sided paired sign-flip permutation mid-p of the mean difference, flipping whole origin families.

    Each family's per-problem differences (condition - baseline) are summed to its total T_f; the statistic is
    |sum_f T_f| (the mean difference over problems times their number). Under the null hypothesis that
    condition and baseline are exchangeable within each family, every sign pattern s_f = +-1 is equally
    likely; p is the mid-p: the share of patterns with |sum_f s_f T_f| above the observed statistic plus half the
    share equal to it. Families whose total is zero cannot change the statistic and are left out. With at most
    EXACT_FAMILIES non-zero families every pattern is enumerated: p = (g + e / 2) / 2**K with g patterns further
    and e as far (the observed one among them); beyond, FLIPS patterns are drawn from
    `numpy.random.default_rng(seed)` and p = (g + (e + 1) / 2) / (FLIPS + 1), the observed pattern counted as one
    more as far. No differences give NaN; all-zero totals give 1.

    Why the mid-p: differences of 0/1 outcomes make family totals small integers, so |sum_f s_f T_f| takes few
    values and many patterns tie with the observed one. The plain permutation p (the share at least as far, ties
    counted whole) never rejects a true null more often than alpha but, with these ties, far less often: in A/A
    simulations over DS-1000's families from the pass records of a coder that passes 9% of its problems
    (bench/bench_stats_calibration.py), at alpha = 0.05 it rejected 0.9% of the time with 100 problems and 3.3%
    with 1000; the mid-p 2.7% and 4.5%. (At 100 problems 39% of those comparisons have so few non-zero family
    totals that not even the most extreme sign pattern has a mid-p below 0.05, which no test conditioned on the
    totals can change; among the rest the mid-p rejected 4.4%.) Counting ties half brings the rate near alpha; the price is that
    for some sets of totals it exceeds alpha (five totals of +-1: 2 of the 32 patterns reach 5 and none goes
    further, p = 1/32, so such a comparison rejects a true null 6.25% of the time).
    """
    if len(diffs) == 0:
        return float("nan")
    totals, _ = family_totals(diffs, families)
    totals = totals[np.abs(totals) > _TOLERANCE]
    if len(totals) == 0:
        return 1.0
    observed = abs(totals.sum())
    if len(totals) <= EXACT_FAMILIES:
        further, tied = _beyond(np.abs(_all_signs(len(totals)) @ totals), observed)
        return (further + tied / 2) / 2 ** len(totals)
    rng = np.random.default_rng(seed)
    further = tied = 0
    for start in range(0, FLIPS, _CHUNK):
        signs = rng.integers(0, 2, size=(min(_CHUNK, FLIPS - start), len(totals)), dtype=np.int8) * 2 - 1
        more, same = _beyond(np.abs(signs @ totals), observed)
        further, tied = further + more, tied + same
    return (further + (tied + 1) / 2) / (FLIPS + 1)


def _beyond(statistics: np.ndarray, observed: float) -> tuple[int, int]:
    """How many of the statistics exceed the observed one, and how many equal it (within _TOLERANCE)."""
    tied = np.abs(statistics - observed) <= _TOLERANCE
    return int(np.sum(statistics > observed + _TOLERANCE)), int(np.sum(tied))


def _all_signs(k: int) -> np.ndarray:
    """Every +-1 pattern of length k, one per row (2**k rows)."""
    bits = (np.arange(2 ** k)[:, None] >> np.arange(k)) & 1
    return (2 * bits - 1).astype(float)


def cluster_se(diffs: Sequence[float], families: Sequence[str]) -> tuple[float, float, int]:
    """Mean difference over problems, its cluster-robust standard error and the number of families K.

    se = sqrt(K / (K - 1) * sum_f (T_f - mean * n_f)**2) / N with T_f a family's total, n_f its problems and N
    all problems: the sandwich (CR1) error of a mean whose families are independent. With equal n_f it is the
    standard error of the family means, sd / sqrt(K).
    """
    totals, sizes = family_totals(diffs, families)
    k = len(totals)
    if k < 2:
        return float(totals.sum() / sizes.sum()) if k else float("nan"), float("nan"), k
    mean = totals.sum() / sizes.sum()
    se = np.sqrt(k / (k - 1) * np.sum((totals - mean * sizes) ** 2)) / sizes.sum()
    return float(mean), float(se), k


def tost_cluster_p(diffs: Sequence[float], families: Sequence[str], margin: float) -> float:
    """TOST equivalence p over origin families: small means the mean difference lies within +-margin.

    The larger of the two one-sided t tests of the mean difference against -margin and +margin, with the
    cluster-robust standard error of `cluster_se` and K - 1 degrees of freedom (fewer than 2 families: NaN).
    A zero error gives 0 inside the margins and 1 outside.
    """
    mean, se, k = cluster_se(diffs, families)
    if k < 2:
        return float("nan")
    if se <= _TOLERANCE:
        return 0.0 if -margin < mean < margin else 1.0
    lower = student_t.sf((mean + margin) / se, k - 1)
    upper = student_t.cdf((mean - margin) / se, k - 1)
    return float(max(lower, upper))


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation: (R+ - R-) / (R+ + R-) over the ranks of the non-zero |d|.

    1 means every non-zero difference favours the condition, -1 the baseline; NaN when all are zero.
    A descriptive effect size of the per-problem differences (no test rests on it).
    """
    diffs = np.asarray(diffs, dtype=float)
    diffs = diffs[diffs != 0]
    if len(diffs) == 0:
        return float("nan")
    ranks = rankdata(np.abs(diffs))
    return float((ranks[diffs > 0].sum() - ranks[diffs < 0].sum()) / ranks.sum())


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values over the finite ones; NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(pvalues), np.nan)
    finite = np.isfinite(pvalues)
    if finite.any():
        adjusted[finite] = multipletests(pvalues[finite], method="holm")[1]
    return adjusted
