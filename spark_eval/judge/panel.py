"""Build the configured panel of judges, loading each distinct judge model once."""
from __future__ import annotations

import json
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.judge.base import Judge


class ModelPool:
    """Instantiates each distinct model config once, so judges (and the coder) sharing a model share it."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}

    def get(self, node: DictConfig) -> Any:
        key = json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True)
        if key not in self._models:
            self._models[key] = instantiate(node)
        return self._models[key]

    def start(self) -> None:
        """Load every model that loads ahead of its first request (an in-process engine)."""
        for model in self._models.values():
            getattr(model, "start", lambda: None)()

    def close(self) -> None:
        """Shut down every model that holds an engine, so the next job of a sweep in this process can load one."""
        for model in self._models.values():
            getattr(model, "close", lambda: None)()


def build_panel(judge_cfg: DictConfig, pool: ModelPool | None = None) -> list[Judge]:
    pool = pool or ModelPool()
    panel = []
    for entry in judge_cfg.panel:
        model = pool.get(entry.model)
        rest = {k: v for k, v in entry.items() if k != "model"}
        panel.append(instantiate(OmegaConf.create(rest), model=model))
    return panel


def panel_versions(panel: list[Judge]) -> dict[str, str]:
    """Rubric versions by judge kind, for records and for the resume identity."""
    return {judge.kind: judge.version for judge in panel}
