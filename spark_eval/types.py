"""The input of the pipeline: a benchmark's problem (what flows out is in `spark_eval.records`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One DS-1000 problem."""

    problem_id: int
    """Index 0..999 in the dataset."""
    library: str
    """`Pandas`, `Numpy`, `Matplotlib`, `Tensorflow`, `Scipy`, `Sklearn` or `Pytorch`."""
    perturbation_type: str
    """`Origin`, `Surface`, `Semantic` or `Difficult-Rewrite`."""
    origin_family: tuple[str, int]
    """(library, perturbation_origin_id): problems perturbed from the same original share it."""
    prompt: str
    """The question text the coder continues."""
    reference_code: str
    """DS-1000's reference solution (what goes where the answer goes)."""
    code_context: str
    """The test module defining `test_execution` (and sometimes `test_string`)."""
    test_case_cnt: int
    """Number of generated test cases."""
