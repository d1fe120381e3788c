"""Stream order as a random factor: how much a learning condition's effect moves with the order of its stream.

A learning condition can run over several seeded stream orders (the top-level `seed` swept with
`pipeline.shuffle=true` on the same problems), each seed its own run. For each model x condition with at least two
seeds, the pass@1 effect of each seed is the mean over problems of (the seed's own per-problem pass@1 - the
baseline's), where the baseline is that model's `report.baseline` run of the same seed when there is one
(`matched`) and else the baseline's per-problem values pooled over its seeds. Over the seeds: the mean effect,
its standard deviation (ddof 1: the seeds are a sample of orders), min and max. Per-problem values are those of
stats.units (the scored records, epochs and samples averaged).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from spark_eval.stats.compare import condition_pairs
from spark_eval.stats.load import Run
from spark_eval.stats.units import paired, pass_units

ORDER_COLUMNS = ("model", "condition", "baseline", "seeds", "mean_effect", "sd_effect", "min_effect", "max_effect",
                 "matched", "n", "effects")


def order_table(records: pd.DataFrame, runs: Sequence[Run], units: pd.DataFrame, options: Any) -> pd.DataFrame:
    """ORDER_COLUMNS per model x condition with at least two seeds; `records` are the scored records (with
    `run_dir`), `units` the pooled pass@1 units. `matched`: seeds whose baseline was the run of the same seed;
    `n`: the fewest problems a seed's effect pairs; `effects`: `seed:effect` per seed, by seed."""
    seeds = records["run_dir"].map({str(run.path): run.seed for run in runs})
    by_seed = {key: pass_units(part) for key, part in records.assign(seed=seeds).groupby(
        ["model", "memory", "seed"], sort=True)}
    rows = []
    for model, condition in condition_pairs(units, options.baseline):
        mine = sorted(seed for m, mem, seed in by_seed if (m, mem) == (model, condition))
        if len(mine) < 2:
            continue
        pooled = units[(units["model"] == model) & (units["memory"] == options.baseline)]
        effects, sizes, matched = [], [], 0
        for seed in mine:
            own = by_seed.get((model, options.baseline, seed))
            base = pooled if own is None else own
            matched += own is not None
            pairs = paired(pd.concat([by_seed[(model, condition, seed)], base]), model, condition, model,
                           options.baseline)
            effects.append(float((pairs["condition"] - pairs["baseline"]).mean()) if len(pairs) else np.nan)
            sizes.append(len(pairs))
        values = np.array(effects)
        rows.append({"model": model, "condition": condition, "baseline": options.baseline, "seeds": len(mine),
                     "mean_effect": float(np.mean(values)), "sd_effect": float(np.std(values, ddof=1)),
                     "min_effect": float(np.min(values)), "max_effect": float(np.max(values)),
                     "matched": matched, "n": min(sizes),
                     "effects": " ".join(f"{seed}:{effect:+.4f}" for seed, effect in zip(mine, effects))})
    return pd.DataFrame(rows, columns=list(ORDER_COLUMNS))
