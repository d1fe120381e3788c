"""Build the configured panel of judges, loading each distinct judge model once."""
from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.judge.base import Judge
from spark_eval.models.pool import ModelPool
from spark_eval.models.structured import RETRY_VERSION


def build_panel(judge_cfg: DictConfig, pool: ModelPool | None = None) -> list[Judge]:
    pool = pool or ModelPool()
    panel = []
    for entry in judge_cfg.panel:
        model = pool.get(entry.model)
        rest = {k: v for k, v in entry.items() if k != "model"}
        panel.append(instantiate(OmegaConf.create(rest), model=model))
    return panel


def panel_versions(panel: list[Judge]) -> dict[str, str]:
    """Rubric versions by judge kind (and the JSON retry prompt's), for records and for the resume identity."""
    found = {judge.kind: judge.version for judge in panel}
    return {**found, "retry": RETRY_VERSION} if found else found
