"""Memories: what gives the coder a recommendation and learns from finished records."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from spark_eval.memory.base import Memory, MemoryConfigError
from spark_eval.models.pool import ModelPool

__all__ = ["Memory", "MemoryConfigError", "build_memory"]


def build_memory(cfg: DictConfig, models: ModelPool, run_dir: Path) -> Memory:
    """The configured memory; it shares the run's model pool (an agent equal to the coder is loaded once)."""
    return instantiate(cfg, models=models, run_dir=run_dir)
