"""Typed schemas for every config group, registered in Hydra's ConfigStore so typos fail at compose time."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DatasetConfig:
    name: str = "ds1000"
    source: str = "file"  # file | hub
    path: str = MISSING
    hub_id: str = "xlangai/DS-1000"
    hub_revision: str = "4416080ac5cb80bdf7576aefb8f9a0b4d5426a44"
    libraries: list[str] = field(default_factory=list)
    perturbations: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    limit: Optional[int] = None
    subset_seed: int = 0


@dataclass
class ModelConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class ReferenceModelConfig(ModelConfig):
    _target_: str = "spark_eval.models.replay.ReferenceAnswers"
    name: str = "reference"


@dataclass
class AnswersModelConfig(ModelConfig):
    _target_: str = "spark_eval.models.replay.AnswersFile"
    name: str = "answers"
    path: str = MISSING


@dataclass
class MemoryConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class JudgeConfig:
    name: str = MISSING
    panel: list[Any] = field(default_factory=list)


@dataclass
class ExecutionConfig:
    _target_: str = "spark_eval.execution.ProcessSandbox"
    mode: str = "fork"  # fork (warm fork server) | strict (fresh interpreter per program)
    python: str = MISSING  # the grading environment's interpreter
    workers: Optional[int] = None  # None: one per core
    timeout_s: float = 120.0
    memory_mb: int = 4096
    max_procs: int = 512
    isolation: str = "auto"  # auto | bwrap | process
    preload: list[str] = field(default_factory=list)
    seaborn_data: Optional[str] = None
    output_tail_chars: int = 2000


@dataclass
class PipelineConfig:
    epochs: int = 1
    repeats: int = 1
    round_size: int = 16
    concurrency: int = 4
    progress: bool = True


@dataclass
class PathsConfig:
    root: str = MISSING
    results: str = MISSING
    cache: str = MISSING
    shared: str = MISSING


@dataclass
class Config:
    dataset: DatasetConfig = MISSING
    model: Any = MISSING
    memory: Any = MISSING
    judge: JudgeConfig = MISSING
    execution: ExecutionConfig = MISSING
    pipeline: PipelineConfig = MISSING
    paths: PathsConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0
    stage: str = "run"
    run_dir: Optional[str] = None


def register_configs() -> None:
    """Register the schemas (idempotent) and the `spark_root` resolver."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="dataset", name="base_dataset", node=DatasetConfig)
    cs.store(group="model", name="base_reference", node=ReferenceModelConfig)
    cs.store(group="model", name="base_answers", node=AnswersModelConfig)
    cs.store(group="memory", name="base_memory", node=MemoryConfig)
    cs.store(group="judge", name="base_judge", node=JudgeConfig)
    cs.store(group="execution", name="base_execution", node=ExecutionConfig)
    cs.store(group="pipeline", name="base_pipeline", node=PipelineConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    if not OmegaConf.has_resolver("spark_root"):
        OmegaConf.register_new_resolver("spark_root", lambda: str(PROJECT_ROOT))


# Config keys that do not change results: they may differ between a run and its resume.
# The dataset's location and source are neutral because its content hash is part of the identity.
RESULT_NEUTRAL_KEYS = (
    "dataset.path",
    "dataset.source",
    "execution.workers",
    "execution.python",
    "execution.isolation",
    "execution.output_tail_chars",
    "pipeline.concurrency",
    "pipeline.progress",
    "paths",
    "run_dir",
    "stage",
)
