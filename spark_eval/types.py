"""The input of the pipeline: a benchmark's problem (what flows out is in `spark_eval.records`)."""
from __future__ import annotations

from dataclasses import dataclass


Message = dict[str, str]
"""One turn of a conversation with a chat model: {"role": "system" | "user" | "assistant", "content": ...}."""

# The libraries problems use, each with the module its programs need (a problem whose module is missing is
# `skipped`); the documentation knowledge base covers the same libraries.
LIBRARY_MODULES = {
    "Pandas": "pandas",
    "Numpy": "numpy",
    "Matplotlib": "matplotlib",
    "Tensorflow": "tensorflow",
    "Scipy": "scipy",
    "Sklearn": "sklearn",
    "Pytorch": "torch",
}
LIBRARIES = tuple(LIBRARY_MODULES)


@dataclass(frozen=True)
class Problem:
    """One problem of a benchmark (DS-1000's fields; other benchmarks fill them as their docstrings say)."""

    problem_id: int
    """The harness's id, 0..n-1 in the benchmark's order (`dataset.ids` selects by it)."""
    library: str
    """One of LIBRARIES."""
    perturbation_type: str
    """DS-1000's `Origin`, `Surface`, `Semantic` or `Difficult-Rewrite`; `Origin` on a benchmark without them."""
    origin_family: tuple[str, int]
    """(library, id of the original): problems perturbed from the same original share it, and statistics
    resample whole families; a problem without perturbations is its own family."""
    prompt: str
    """The question text the coder continues."""
    reference_code: str
    """The accepted solution (what goes where the answer goes)."""
    code_context: str
    """The benchmark's test code the program is built around (DS-1000: the module defining `test_execution`)."""
    test_case_cnt: int
    """Number of test cases (1 when the benchmark does not count them)."""
    task_id: str = ""
    """The benchmark's own name for the problem (`PandasEval/3`); empty when it is the id."""
