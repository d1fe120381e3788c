"""Clustered bootstrap: resample whole origin families, so perturbations of one problem move together."""
from __future__ import annotations

from typing import Sequence

import numpy as np

LEVEL = 0.95


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` resamples of the clusters.

    Clusters are taken in sorted order; each resample draws as many clusters as there are, with replacement,
    from `numpy.random.default_rng(seed).integers(0, k, size=(resamples, k))`, and its mean is the mean over
    every value of the drawn clusters (a cluster drawn twice counts twice).
    """
    values = np.asarray(values, dtype=float)
    names, index = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    k = len(names)
    sums = np.bincount(index, weights=values, minlength=k)
    counts = np.bincount(index, minlength=k).astype(float)
    draws = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1)


def cluster_ci(values: Sequence[float], clusters: Sequence[str], resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval (95%) of the clustered bootstrap mean; NaNs when there are no values."""
    if len(values) == 0:
        return float("nan"), float("nan")
    means = cluster_bootstrap(values, clusters, resamples, seed)
    low, high = np.percentile(means, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(low), float(high)


def mean_ci(values: Sequence[float], clusters: Sequence[str], resamples: int, seed: int) -> dict[str, float]:
    """`{n, families, mean, ci_low, ci_high}` of the values, the interval clustered by `clusters`."""
    values = np.asarray(values, dtype=float)
    low, high = cluster_ci(values, clusters, resamples, seed)
    return {"n": len(values), "families": len(set(clusters)),
            "mean": float(values.mean()) if len(values) else float("nan"), "ci_low": low, "ci_high": high}
