"""Advice checked against ground truth: did the advice name an API the problem's reference solution uses?

Each advised record can carry `recommendation.api_labels` (the documented APIs the reference uses) and
`recommendation.api_hits` (those of them the advice's text names; None when not checked). Per model x memory:

- `advised`: records whose coder was shown advice (as the records table's "Advice given");
- `labelled`: those of them that were checked against at least one label (labels not empty, hits not None);
- `named`: those of the labelled whose advice names at least one labelled API; `named_share` = named / labelled,
  its 95% CI the clustered bootstrap over origin families (stats.bootstrap: whole families resampled, the share
  of a resample the ratio of its sums), `families` the families of the labelled records;
- `hit_n`, `hit_pass`: the labelled records the metrics use (stats.units.scored: no error and, with a quality
  judge, its verdict) whose advice named one, and their pass rate; `miss_n`, `miss_pass`: those whose advice
  named none. Record-level, descriptive: a hit is not randomised, so the split is no causal effect.

A condition none of whose records was checked (no `api_hits`) is left out; the table is empty when none was.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spark_eval.stats.bootstrap import mean_ci
from spark_eval.stats.units import RECORD, record_table, scored

ADVICE_COLUMNS = ("model", "memory", "advised", "labelled", "named", "named_share", "named_ci_low", "named_ci_high",
                  "families", "hit_n", "hit_pass", "miss_n", "miss_pass", "leaky")


def advice_table(frame: pd.DataFrame, judge: str | None, leaky: dict[tuple[str, str], bool],
                 options: Any) -> pd.DataFrame:
    """ADVICE_COLUMNS per model x memory whose records carry `api_hits` (see the module's docstring)."""
    apis = frame.drop_duplicates(RECORD)[[*RECORD, "api_labels", "api_hits"]]
    records = record_table(frame, judge).merge(apis, on=RECORD, how="left")
    usable = set(scored(records, judge).set_index(RECORD).index)
    rows = []
    for (model, memory), part in records.groupby(["model", "memory"], sort=True):
        if part["api_hits"].isna().all():
            continue
        labelled = part[part["advised"] & part["api_hits"].notna() & part["api_labels"].fillna("").ne("")]
        hit = labelled["api_hits"].ne("").to_numpy()
        found = mean_ci(hit.astype(float), labelled["family"], options.bootstrap, options.seed)
        kept = np.array([key in usable for key in zip(labelled["run_dir"], labelled["key"])], dtype=bool)
        passed = labelled["passed"].to_numpy()
        rows.append({"model": model, "memory": memory, "advised": int(part["advised"].sum()),
                     "labelled": len(labelled), "named": int(hit.sum()), "named_share": found["mean"],
                     "named_ci_low": found["ci_low"], "named_ci_high": found["ci_high"],
                     "families": found["families"],
                     "hit_n": int((kept & hit).sum()), "hit_pass": _mean(passed[kept & hit]),
                     "miss_n": int((kept & ~hit).sum()), "miss_pass": _mean(passed[kept & ~hit]),
                     "leaky": leaky.get((model, memory), False)})
    return pd.DataFrame(rows, columns=list(ADVICE_COLUMNS))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")
