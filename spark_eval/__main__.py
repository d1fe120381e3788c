"""Entry point: `python -m spark_eval experiment=<name> [overrides]` composes the config and runs a stage."""
from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from spark_eval.config import register_configs
from spark_eval.errors import UserError
from spark_eval.models.base import ModelCallError
from spark_eval.pipeline import run
from spark_eval.pipeline.plan import dry_run
from spark_eval.pipeline.rejudge import judge_run
from spark_eval.records.index import index_stage
from spark_eval.report import report_stage
from spark_eval.stats.versus import compare_stage

log = logging.getLogger("spark_eval")

STAGES = {"run": run, "judge": judge_run, "report": report_stage, "index": index_stage, "compare": compare_stage}

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> Any:
    if cfg.stage not in STAGES:
        log.error("stage=%s is unknown; choose one of: %s", cfg.stage, ", ".join(STAGES))
        sys.exit(2)
    if cfg.dry_run and cfg.stage != "run":
        log.error("dry_run=true plans stage=run; drop dry_run for stage=%s", cfg.stage)
        sys.exit(2)
    try:
        return (dry_run if cfg.dry_run else STAGES[cfg.stage])(cfg)  # a multirun's dry run totals the plans
    except Exception as e:
        cause = e.__cause__ if isinstance(e, InstantiationException) else e  # hydra wraps errors of _target_s
        if not isinstance(cause, UserError):
            raise
        # a call that failed outside any record (the paper's synthetic hints before the stream) stops the run
        resume = "; finished work is kept: run the same command again to resume" if isinstance(cause, ModelCallError) else ""
        log.error("%s%s", cause, resume)
        sys.exit(2)


if __name__ == "__main__":
    main()
