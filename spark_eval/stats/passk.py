"""pass@k: the chance that at least one of k answers drawn for a problem passes, estimated without bias.

Chen et al. (2021), "Evaluating Large Language Models Trained on Code" (HumanEval), section 2.1: draw n >= k
samples of a problem, count the c that pass; 1 - C(n - c, k) / C(n, k) is an unbiased estimate of pass@k,
where 1 - (1 - c/n)**k is not. Here in the paper's product form, which never forms a large binomial.
Both summary.json and the statistics use this one definition.
"""
from __future__ import annotations

from typing import Iterable

K_VALUES = (1, 2, 5, 10, 20, 50, 100)
"""The k reported (HumanEval's usual set): those no larger than the samples drawn per problem."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `n` samples of which `c` passed: 1 - C(n - c, k) / C(n, k).

    Computed as 1 - prod_{i = n - c + 1}^{n} (1 - k / i). Defined for 1 <= k <= n only: a problem with fewer
    samples than k says nothing about pass@k, so ValueError rather than a guess.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples of a problem, got {n}")
    if n - c < k:
        return 1.0  # every k-subset holds a passing sample
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def ks_for(samples: int) -> tuple[int, ...]:
    """The k of K_VALUES that `samples` per problem can estimate (k <= samples)."""
    return tuple(k for k in K_VALUES if k <= samples)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> tuple[float | None, int]:
    """pass@k averaged over problems given as (n, c) pairs, and how many were left out for having n < k;
    None when none is left."""
    values, left_out = [], 0
    for n, c in counts:
        if n < k:
            left_out += 1
        else:
            values.append(pass_at_k(n, c, k))
    return (sum(values) / len(values) if values else None), left_out
