"""The run's models: each distinct model config instantiated once and shared (coder, agent, learner, judges)."""
from __future__ import annotations

import json
from typing import Any, Awaitable, TypeVar

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.models.base import Pooled

T = TypeVar("T")


class ModelPool:
    """Instantiates each distinct model config once, so judges (and the coder) sharing a model share it."""

    def __init__(self, ledger: Any = None) -> None:
        self._models: dict[str, Pooled] = {}
        self.ledger = ledger  # every model that makes paid calls charges it (the run's budget reads it)

    def get(self, node: DictConfig) -> Any:
        """The model `node` configures (a `Pooled`: a ChatModel, or a coder that replays answers)."""
        key = json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True)
        if key not in self._models:
            model = instantiate(node)
            model.ledger = self.ledger
            self._models[key] = model
        return self._models[key]

    def start(self) -> None:
        """Load every model that loads ahead of its first request (an in-process engine)."""
        for model in self._models.values():
            model.start()

    async def closing(self, work: Awaitable[T]) -> T:
        """`work`, then every model's per-loop clients closed while the loop still runs (`asyncio.run(pool.closing(
        ...))`)."""
        try:
            return await work
        finally:
            for model in self._models.values():
                await model.aclose()

    def close(self) -> None:
        """Shut down every model that holds an engine, so the next job of a sweep in this process can load one."""
        for model in self._models.values():
            model.close()
