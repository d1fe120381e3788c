"""Memories: what gives the coder a recommendation and learns from finished records."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from spark_eval.data.base import Benchmark
from spark_eval.memory.base import Memory, MemoryConfigError
from spark_eval.models.pool import ModelPool

__all__ = ["Memory", "MemoryConfigError", "build_memory"]


def build_memory(cfg: DictConfig, models: ModelPool, run_dir: Path, benchmark: Benchmark) -> Memory:
    """The configured memory; it shares the run's model pool (an agent equal to the coder is loaded once) and
    asks the run's benchmark how a problem is put to a coder (the paper's synthetic attempts)."""
    return instantiate(cfg, models=models, run_dir=run_dir, benchmark=benchmark)
