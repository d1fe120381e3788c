"""Who helped whom in a community of learners sharing one memory (experiment=community).

- `transfer_table`: leave-one-contributor-out. A beneficiary's problems ran against a frozen memory whole and
  again with one contributor's insights masked (`memory.mask_contributors`); the paired difference (whole minus
  masked, per problem, clustered by origin family) is what that contributor's experience gave the beneficiary.
- `contributor_table`: per contributor, the insights it contributed (active, retired, poison), the outcome
  counters curation kept for them, and how often records were shown and cited one, by itself and by others.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from spark_eval.records import read_lines
from spark_eval.stats.compare import compare
from spark_eval.stats.load import Run
from spark_eval.stats.units import paired

TRANSFER_COLUMNS = ("beneficiary", "contributor", "n", "metric", "mean_diff", "ci_low", "ci_high", "p_value",
                    "families", "with_mean", "without_mean", "with_memory", "without_memory", "test")
CONTRIBUTOR_COLUMNS = ("contributor", "insights", "retired", "poison", "helpful", "harmful", "shown", "cited",
                       "cited_by_others")


def _masked(run: Run) -> tuple[str, ...]:
    return tuple(run.manifest.get("identity", {}).get("memory.mask_contributors") or ())


def _frozen_from(run: Run) -> str | None:
    identity = run.manifest.get("identity", {})
    return identity.get("memory.frozen_store") if identity.get("memory.experience") == "frozen" else None


def transfer_table(runs: Sequence[Run], units: dict[str, pd.DataFrame], options: Any) -> pd.DataFrame:
    """One row per (beneficiary, masked contributors, metric): the run without them against the run of the same
    model, seed and frozen store with nothing masked (TRANSFER_COLUMNS; `mean_diff` = with - without)."""
    rows = []
    for run in runs:
        masked, source = _masked(run), _frozen_from(run)
        if not masked or not source:
            continue
        whole = next((r for r in runs if r.model == run.model and r.seed == run.seed and not _masked(r)
                      and _frozen_from(r) == source), None)
        if whole is None:
            continue
        for metric, table in units.items():
            pairs = paired(table, run.model, whole.memory, run.model, run.memory)
            if not len(pairs):
                continue
            found = compare(pairs, options)
            rows.append({"beneficiary": run.model, "contributor": "+".join(masked), "metric": metric,
                         "with_mean": found["condition_mean"], "without_mean": found["baseline_mean"],
                         "with_memory": whole.memory, "without_memory": run.memory,
                         **{k: found[k] for k in ("n", "families", "mean_diff", "ci_low", "ci_high", "p_value",
                                                  "test")}})
    frame = pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))
    return frame.sort_values(["beneficiary", "contributor", "metric"], ignore_index=True)


def store_insights(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every insight of the runs' memory snapshots (`memory/final/insights.jsonl`), each once, at the snapshot
    that counted most outcomes for it (the latest, for a store that only grows its counters)."""
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        for insight in read_lines(Path(run.path) / "memory" / "final" / "insights.jsonl", repair=False):
            seen = latest.get(insight["id"])
            if seen is None or insight["helpful"] + insight["harmful"] >= seen["helpful"] + seen["harmful"]:
                latest[insight["id"]] = insight
    return [latest[k] for k in sorted(latest)]


def contributor_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Per contributor (CONTRIBUTOR_COLUMNS): from the snapshots, insights it had a part in (active, retired,
    poison) and their helpful/harmful counters; from the records, items of its shown and cited (an item with two
    contributors counts for both), and cited by another model's records."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CONTRIBUTOR_COLUMNS[1:], 0))
    for insight in store_insights(runs):
        for contributor in sorted({p.get("model") for p in insight["provenance"] if p.get("model")}):
            row = counts[contributor]
            row["insights" if insight["status"] == "active" else "retired"] += 1
            row["poison"] += any(p.get("poison") for p in insight["provenance"])
            row["helpful"] += insight["helpful"]
            row["harmful"] += insight["harmful"]
    for run in runs:
        for record in run.records:
            for item in record.recommendation.items if record.recommendation else ():
                for contributor in item.get("contributors") or ():
                    row = counts[contributor]
                    row["shown"] += 1
                    if item.get("cited"):
                        row["cited"] += 1
                        row["cited_by_others"] += contributor != record.model
    rows = [{"contributor": name, **values} for name, values in sorted(counts.items())]
    return pd.DataFrame(rows, columns=list(CONTRIBUTOR_COLUMNS))
