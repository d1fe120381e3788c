"""Who helped whom in a community of learners sharing one memory (experiment=community).

- `transfer_table`: leave-one-contributor-out. A beneficiary's problems ran against a frozen memory whole and
  again with one contributor's insights masked (`memory.mask_contributors`); the paired difference (whole minus
  masked, per problem, clustered by origin family) is what that contributor's experience gave the beneficiary.
- `contributor_table`: per contributor, the insights it contributed (active, retired, poison), the outcome
  counters curation kept for them, and how often records were shown and cited one, by itself and by others.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import pandas as pd

from spark_eval.records.run import FINAL, SNAPSHOT_INSIGHTS, SNAPSHOT_OPS, RunFiles
from spark_eval.stats.compare import compare
from spark_eval.stats.load import Run
from spark_eval.stats.units import paired

TRANSFER_COLUMNS = ("beneficiary", "contributor", "n", "metric", "mean_diff", "ci_low", "ci_high", "p_value",
                    "families", "with_mean", "without_mean", "with_memory", "without_memory", "test")
CONTRIBUTOR_COLUMNS = ("contributor", "insights", "retired", "poison", "helpful", "harmful", "shown", "cited",
                       "cited_by_others")


def _masked(run: Run) -> tuple[str, ...]:
    return tuple(run.manifest.identity.get("memory.mask_contributors") or ())


def _frozen_from(run: Run) -> str | None:
    identity = run.manifest.identity
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
        for insight in RunFiles(run.path).snapshot(FINAL, SNAPSHOT_INSIGHTS):
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
            row["poison"] += _is_poison(insight)
            row["helpful"] += insight["helpful"]
            row["harmful"] += insight["harmful"]
    for run in runs:
        for record in run.records:
            for item in record.recommendation.items if record.recommendation else ():
                for contributor in item.contributors or ():
                    row = counts[contributor]
                    row["shown"] += 1
                    if item.cited:
                        row["cited"] += 1
                        row["cited_by_others"] += contributor != record.model
    rows = [{"contributor": name, **values} for name, values in sorted(counts.items())]
    return pd.DataFrame(rows, columns=list(CONTRIBUTOR_COLUMNS))


POISON_COLUMNS = ("memory", "poison_rate", "poisoner", "insights", "poison", "poison_active", "poison_retired",
                  "rounds_to_retire", "rounds_to_retire_min", "rounds_to_retire_max", "uses_to_retire",
                  "uses_to_retire_min", "uses_to_retire_max", "poison_uses", "honest_insights", "honest_retired",
                  "shown", "cited", "cited_by_honest", "honest_pass", "honest_n")


def _store_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs that learned into one shared store (identity `memory.store`), by that store."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        store = run.manifest.identity.get("memory.store")
        if store and run.manifest.identity.get("memory.experience") == "online":
            groups[str(store)].append(run)
    return dict(groups)


def _is_poison(insight: dict[str, Any]) -> bool:
    """A snapshot's insight with a source the poisoning arm wrote (as `Item.poison`, on the snapshot's JSON)."""
    return any(p.get("poison") for p in insight["provenance"])


def _poison_rate(run: Run) -> float:
    return float(run.manifest.identity.get("memory.poison.rate") or 0.0)


def _poisoners(runs: Sequence[Run]) -> set[str]:
    """The models that poisoned any store of the runs: the bad members, also in their stores at rate 0 (so that
    `honest` means the same members at every rate)."""
    return {run.model for run in runs if _poison_rate(run)}


def store_ops(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The longest curation log among the runs' snapshots of one shared store (the last to finish saw it all)."""
    logs = [RunFiles(run.path).snapshot(FINAL, SNAPSHOT_OPS) for run in runs]
    return max(logs, key=len, default=[])


def poison_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Per shared store that a poisoning arm learned into (POISON_COLUMNS), the honest stores beside them: poison
    insights written, still active and retired; rounds from a poison insight's first ADD to its RETIRE
    (`rounds_to_retire`: median, min and max over the retired ones); the records, of every member, whose outcome
    was charged to it before it was retired (`uses_to_retire`, the same spread; `poison_uses` over all poison);
    honest insights written and retired (the false alarms); how often records were shown and cited poison (by
    honest members apart); and the honest members' pass rate on their records (honest: every model that poisoned
    no store of the runs)."""
    groups = _store_groups(runs)
    bad = _poisoners(runs)
    if not bad:
        return pd.DataFrame(columns=list(POISON_COLUMNS))
    rows = []
    for members in groups.values():
        poisoners = sorted(bad & {run.model for run in members})
        insights = store_insights(members)
        poison = {i["id"] for i in insights if _is_poison(i)}
        retired = {i["id"] for i in insights if i["id"] in poison and i["status"] == "retired"}
        added: dict[str, int] = {}
        delays = []
        for op in store_ops(members):
            if op["op"] == "ADD" and op["item_id"] in poison:
                added.setdefault(op["item_id"], op["round"])
            elif op["op"] == "RETIRE" and op["item_id"] in added:
                delays.append(op["round"] - added[op["item_id"]])
        uses: dict[str, int] = defaultdict(int)  # a retired insight is not shown again: its uses are those before
        shown = cited = by_honest = 0
        honest = []
        for run in members:
            for record in run.records:
                if run.model not in poisoners:
                    honest.append(record.passed)
                for item in record.recommendation.charged_insights if record.recommendation else ():
                    uses[item.id] += item.id in poison
                for item in record.recommendation.items if record.recommendation else ():
                    if item.poison:
                        shown += 1
                        cited += bool(item.cited)
                        by_honest += bool(item.cited) and run.model not in poisoners
        to_retire = [uses[i] for i in sorted(retired)]
        rows.append({"memory": members[0].memory, "poison_rate": max(_poison_rate(run) for run in members),
                     "poisoner": "+".join(poisoners), "insights": len(insights), "poison": len(poison),
                     "poison_active": len(poison - retired), "poison_retired": len(retired),
                     **_spread("rounds_to_retire", delays), **_spread("uses_to_retire", to_retire),
                     "poison_uses": sum(uses.values()), "honest_insights": len(insights) - len(poison),
                     "honest_retired": sum(i["status"] == "retired" and i["id"] not in poison for i in insights),
                     "shown": shown, "cited": cited, "cited_by_honest": by_honest,
                     "honest_pass": sum(honest) / len(honest) if honest else None, "honest_n": len(honest)})
    return pd.DataFrame(rows, columns=list(POISON_COLUMNS)).sort_values("poison_rate", ignore_index=True)


def _spread(name: str, values: Sequence[int]) -> dict[str, float | None]:
    """`name` (the median), `name_min` and `name_max` of `values`; None each when there are none."""
    if not values:
        return {name: None, f"{name}_min": None, f"{name}_max": None}
    return {name: float(pd.Series(values).median()), f"{name}_min": float(min(values)),
            f"{name}_max": float(max(values))}


def poison_curves(runs: Sequence[Run]) -> dict[tuple[float, str], pd.DataFrame]:
    """Per shared store (its poison rate and memory name), per learning round: the honest members' cumulative pass
    rate over their records up to that round, and the poison share of the store's active insights after that
    round's curation (the log replayed in order; members' rounds are numbered alike, so a round is everyone's round
    of that number)."""
    curves = {}
    poisoners = _poisoners(runs)
    for members in _store_groups(runs).values():
        key = (max(_poison_rate(run) for run in members), members[0].memory)
        poison = {i["id"] for i in store_insights(members) if _is_poison(i)}
        active: set[str] = set()
        share: dict[int, float] = {}
        for op in store_ops(members):
            if op["op"] == "ADD":
                active.add(op["item_id"])
            elif op["op"] == "RETIRE":
                active.discard(op["item_id"])
            if op["round"] is not None and op["round"] >= 0:
                share[op["round"]] = len(active & poison) / len(active) if active else 0.0
        passed: dict[int, list[bool]] = defaultdict(list)
        for run in members:
            if run.model in poisoners:
                continue
            size = int(run.manifest.identity.get("pipeline.round_size") or 1)
            order = {pid: i for i, pid in enumerate(run.manifest.problem_ids)}
            for position, record in enumerate(run.records):  # a problem's round: its place in the stream
                passed[order.get(record.problem_id, position) // size].append(record.passed)
        rounds = sorted(set(share) | set(passed))
        cumulative, seen = [], []
        for r in rounds:
            seen += passed.get(r, [])
            cumulative.append(sum(seen) / len(seen) if seen else None)
        last = 0.0
        shares = []
        for r in rounds:
            last = share.get(r, last)
            shares.append(last)
        curves[key] = pd.DataFrame({"round": rounds, "honest_pass": cumulative, "poison_share": shares})
    return curves if poisoners else {}
