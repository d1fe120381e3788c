"""The power of a paired comparison: the smallest true difference its design detects (the minimum detectable
effect, MDE), from a measured standard error after the run or from a stated design before it.

A comparison's per-problem differences (condition - baseline) are clustered by origin family, and its test
treats a family as the independent unit (stats/paired.py). So the MDE rests on the standard error of the mean
difference over families and on K, the number of families: with the two-sided level alpha and the wanted power,

    MDE = (t_{K-1, 1-alpha/2} + t_{K-1, power}) * se

the usual normal-approximation formula with Student t quantiles of K - 1 degrees of freedom in place of the
normal ones: at a few families the normal quantiles would understate the MDE (at K = 8, 1.96 + 0.84 = 2.80
against 2.36 + 0.90 = 3.26). Pure numpy and scipy; the statistics (stats/compare.py) and the dry run
(pipeline/plan.py) both use it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import t as student_t

ALPHA = 0.05
"""Two-sided level of the tests whose power is stated (and of the report's verdicts)."""
POWER = 0.80
"""The chance of detecting a true difference of the MDE's size."""
DISCORDANCE = 0.30
"""Stated share of problems whose pass/fail differs between the two arms, when no pilot measured it."""
RHO = 0.5
"""Stated correlation of two problems' differences within one origin family, when no pilot measured it.

DS-1000's perturbations of one original (Surface, Semantic, Difficult-Rewrite) ask for nearly the same code, so
they often succeed or fail together; 0.5 assumes half of a family's variance is shared. 0 would treat the
problems as independent (and promise a smaller MDE than the design reaches), 1 as one problem per family."""


def mde(se: float, families: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided test at `alpha` detects with probability `power`, given the
    standard error `se` of the mean difference and its number of independent `families` (K):
    (t_{K-1, 1-alpha/2} + t_{K-1, power}) * se, with Student t quantiles of K - 1 degrees of freedom (normal ones
    would understate it at few families). In the unit of `se`; NaN when K < 2 or `se` is NaN."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"mde needs 0 < alpha < 1 and 0 < power < 1, got alpha={alpha}, power={power}")
    if families < 2 or not np.isfinite(se):
        return float("nan")
    df = families - 1
    return float((student_t.ppf(1 - alpha / 2, df) + student_t.ppf(power, df)) * se)


def planned_se(discordance: float, family_sizes: Sequence[int], rho: float = RHO) -> float:
    """The standard error of the mean difference a design will have, before any data (see `planned_mde`)."""
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance is a share of problems, between 0 and 1; got {discordance}")
    if not 0 <= rho <= 1:
        raise ValueError(f"rho is a correlation within a family, between 0 and 1; got {rho}")
    sizes = np.asarray(family_sizes, dtype=float)
    if len(sizes) == 0 or sizes.sum() == 0:
        return float("nan")
    variances = discordance * sizes * (1 + (sizes - 1) * rho)
    return float(np.sqrt(variances.sum()) / sizes.sum())


def planned_mde(discordance: float, family_sizes: Sequence[int], rho: float = RHO, alpha: float = ALPHA,
                power: float = POWER) -> float:
    """The MDE (see `mde`) of a pass@1 comparison before any data, from the design's origin families.

    A problem's pass difference is -1, 0 or 1; with a share `discordance` (d) of problems whose pass/fail differs
    between the arms, its variance under the null hypothesis (no difference) is d. The problems of one family
    are correlated by `rho` (see RHO), so a family of n_f problems has a total of variance
    d * n_f * (1 + (n_f - 1) * rho), the families are independent, and the mean over N problems has
    se = sqrt(sum_f var_f) / N. `family_sizes` are the n_f of the problems the experiment selects; K, the
    number of families, gives the t quantiles. In the unit of the difference (a share: 0.1 is 10 points).
    """
    return mde(planned_se(discordance, family_sizes, rho), len(family_sizes), alpha, power)


def design_from_pilot(diffs: Sequence[float], families: Sequence[str]) -> tuple[float, float]:
    """The discordance and the intra-family correlation `planned_mde` takes, measured from paired pilot units.

    `diffs` are per-problem differences (condition - baseline, each in [-1, 1]), `families` their origin
    families. Both are moments about zero, the null hypothesis's mean: discordance = mean(diff**2) (the share of
    discordant problems when passes are 0 or 1), and rho = sum_f (T_f**2 - sum_i diff_i**2) /
    (discordance * sum_f n_f * (n_f - 1)) with T_f a family's total, the pairwise products within families over
    their expectation at correlation 1. On the pilot's own families the planned variance is then sum_f T_f**2,
    the sign-flip test's null variance. rho is clipped into [0, 1] and NaN when no family holds two problems or
    no problem is discordant (nothing to measure it on).
    """
    values = np.asarray(diffs, dtype=float)
    if len(values) == 0:
        raise ValueError("design_from_pilot needs at least one paired problem")
    if len(values) != len(families):
        raise ValueError(f"design_from_pilot needs one family per difference, got {len(values)} and {len(families)}")
    names, index = np.unique(np.asarray(families, dtype=str), return_inverse=True)
    totals = np.bincount(index, weights=values, minlength=len(names))
    squares = np.bincount(index, weights=values ** 2, minlength=len(names))
    sizes = np.bincount(index, minlength=len(names)).astype(float)
    discordance = float(np.mean(values ** 2))
    pairs = float(np.sum(sizes * (sizes - 1)))
    if pairs == 0 or discordance == 0:
        return discordance, float("nan")
    rho = float(np.sum(totals ** 2 - squares) / (discordance * pairs))
    return discordance, min(max(rho, 0.0), 1.0)
