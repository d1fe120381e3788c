"""Benchmarks: their problems, the coder's conversation, and the program that grades an answer."""
from __future__ import annotations

from typing import Any

from spark_eval.data.base import Benchmark, DatasetError

__all__ = ["Benchmark", "DatasetError", "build_benchmark"]


def build_benchmark(cfg: Any) -> Benchmark:
    """The benchmark the `dataset` node's `_target_` names (`benchmark=<name>` picks the node)."""
    from hydra.utils import get_class  # Hydra only when a benchmark is built from a config

    return get_class(cfg._target_)(cfg)
