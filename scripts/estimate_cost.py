"""Estimate the cost and API time of an experiment before running it: the dry run's plan of every job.

    python scripts/estimate_cost.py                       # experiment=paper_main
    python scripts/estimate_cost.py experiment=paper_ablations

The same as `python -m spark_eval experiment=<name> dry_run=true` (spark_eval/pipeline/plan.py; each component's
`planned_calls` holds its token assumptions, spark_eval/pipeline/estimate.py adds them up with the prices), printed
without Hydra's log around it.
"""
from __future__ import annotations

import sys

from spark_eval.config import compose_config, experiment_sweep
from spark_eval.pipeline.plan import plan_run, total_lines


def main() -> None:
    overrides = sys.argv[1:] or ["experiment=paper_main"]
    experiment = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
    plans = [plan_run(compose_config(*overrides, *sweep)) for sweep in experiment_sweep(experiment)]
    for plan in plans:
        print("\n".join(plan.lines()))
    print("\n".join(total_lines(plans)))


if __name__ == "__main__":
    main()
