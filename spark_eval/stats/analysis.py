"""Everything the tables, figures and report show, computed once from the runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from spark_eval.stats.advice import advice_table
from spark_eval.stats.bootstrap import mean_ci
from spark_eval.stats.community import contributor_table, poison_table, transfer_table
from spark_eval.stats.compare import breakdown, comparisons
from spark_eval.stats.flips import flip_table
from spark_eval.stats.load import Run, tidy
from spark_eval.stats.orders import order_table
from spark_eval.stats.units import (BAND_COLUMNS, band_units, choose_judge, pass_at_k_units, pass_units,
                                    quality_units, record_table, scored)
from spark_eval.stats.validity import validity_table

ALL_MODELS = "all models"
ALL_CONDITIONS = "all conditions"
CONDITION_COLUMNS = ("model", "memory", "metric", "n", "families", "mean", "ci_low", "ci_high", "leaky")
COUNT_COLUMNS = ("model", "memory", "runs", "records", "errors", "advice_given", "advice_errors", "abstained",
                 "no_verdict", "problems", "leaky")
BAND_TABLE_COLUMNS = ("model", "memory", "band", "n", "families", "mean", "ci_low", "ci_high", "leaky")


@dataclass(frozen=True)
class Analysis:
    """The runs, their tidy frame and the statistics derived from them."""

    runs: list[Run]
    frame: pd.DataFrame
    options: Any
    """The `report` config (ReportConfig): baseline, bootstrap, seed, tost_margin, judges, window."""
    judges: dict[str, str | None]
    """`quality` and `helpfulness`: the judge reported for each kind (None without verdicts)."""
    units: dict[str, pd.DataFrame]
    """`pass` (pass@1), `pass@k` for each k > 1 the runs' samples per problem allow, and `quality` when there is a
    quality judge: per-problem values (see stats.units)."""
    counts: pd.DataFrame
    """Per model x memory: what became of its records (COUNT_COLUMNS, see `condition_counts`)."""
    conditions: pd.DataFrame
    """Per model x memory x metric: mean with its clustered CI (CONDITION_COLUMNS)."""
    comparisons: pd.DataFrame
    """Paired comparisons (stats.compare.COMPARISON_COLUMNS); `judge_signal` on a quality row: what the quality
    judge's AUROC against execution allows on the records of both arms (validity.SIGNALS)."""
    validity: pd.DataFrame
    """The quality judge against execution (validity.VALIDITY_COLUMNS): all scored records pooled (model
    ALL_MODELS, memory ALL_CONDITIONS), then per model x memory; empty without a quality judge."""
    breakdown: pd.DataFrame
    bands: pd.DataFrame
    """Per model (and ALL_MODELS) x memory x band: share of recommendations with its CI (BAND_TABLE_COLUMNS)."""
    transfer: pd.DataFrame
    """Leave-one-contributor-out comparisons of a community's memory (community.TRANSFER_COLUMNS; empty without
    runs that mask a contributor)."""
    contributors: pd.DataFrame
    """Per contributor to a shared memory (community.CONTRIBUTOR_COLUMNS; empty when no insight names one)."""
    poison: pd.DataFrame
    """Per shared store of a poisoning arm's runs (community.POISON_COLUMNS; empty without one)."""
    flips: pd.DataFrame
    """Per model x condition against its baseline, the whole set (`library` "all") then per library: problems
    the baseline passed that the condition lost, and failed ones it rescued (flips.FLIP_COLUMNS)."""
    advice: pd.DataFrame
    """Per model x memory whose records were checked: how often the advice named an API the reference uses, and
    the pass rates of hits and misses (advice.ADVICE_COLUMNS; empty when no record was checked)."""
    orders: pd.DataFrame
    """Per model x condition run over two or more seeded stream orders: the spread of its pass@1 effect over the
    seeds (orders.ORDER_COLUMNS; empty when no condition has two seeds)."""


def analyse(runs: Sequence[Run], options: Any) -> Analysis:
    """Tidy the runs and compute every statistic of the report (deterministic for fixed options)."""
    runs = list(runs)
    frame = tidy(runs)
    judges = {kind: choose_judge(frame, kind, getattr(options, f"{kind}_judge"))
              for kind in ("quality", "helpfulness")}
    records = record_table(frame, judges["quality"])
    used = scored(records, judges["quality"])
    units = {"pass": pass_units(used), **pass_at_k_units(used)}
    if judges["quality"]:
        units["quality"] = quality_units(used)
    leaky = {(r.model, r.memory): False for r in runs}
    for r in runs:
        leaky[(r.model, r.memory)] |= r.leaky
    bands = band_units(frame, judges["helpfulness"]) if judges["helpfulness"] else None
    return Analysis(
        runs=runs, frame=frame, options=options, judges=judges, units=units,
        counts=condition_counts(records, judges["quality"], leaky),
        conditions=condition_means(units, leaky, options),
        comparisons=comparisons(units, judges, leaky, options, used),
        validity=validity_table(used, judges["quality"], (ALL_MODELS, ALL_CONDITIONS)),
        breakdown=breakdown(units, leaky, options),
        bands=band_shares(bands, leaky, options),
        transfer=transfer_table(runs, units, options),
        contributors=contributor_table(runs),
        poison=poison_table(runs),
        flips=flip_table(units, options),
        advice=advice_table(frame, judges["quality"], leaky, options),
        orders=order_table(used, runs, units["pass"], options),
    )


def condition_means(units: dict[str, pd.DataFrame], leaky: dict[tuple[str, str], bool], options: Any) -> pd.DataFrame:
    """Mean per model x memory x metric over its units, with the clustered bootstrap CI."""
    rows = []
    for metric, table in units.items():
        for (model, memory), part in table.groupby(["model", "memory"], sort=True):
            rows.append({"model": model, "memory": memory, "metric": metric, "leaky": leaky[(model, memory)],
                         **mean_ci(part["value"], part["family"], options.bootstrap, options.seed)})
    return pd.DataFrame(rows, columns=list(CONDITION_COLUMNS))


def condition_counts(records: pd.DataFrame, judge: str | None, leaky: dict[tuple[str, str], bool]) -> pd.DataFrame:
    """Per model x memory: its runs (seeds) and records; `errors`, the records that ended in an error (left out
    of every metric); `advice_given`, the records whose coder was shown advice; `advice_errors`, those whose
    memory recorded why it gave none (`recommendation.error`); `abstained`, those whose memory's gate chose to give
    none (`recommendation.abstained`); `no_verdict`, records without an error that lack
    the quality judge's verdict (left out too; NA without a quality judge); `problems`, the problems left."""
    rows = []
    for (model, memory), part in records.groupby(["model", "memory"], sort=True):
        clean = part["error"].isna()
        rows.append({"model": model, "memory": memory, "runs": part["run_dir"].nunique(), "records": len(part),
                     "errors": int((~clean).sum()), "advice_given": int(part["advised"].sum()),
                     "advice_errors": int(part["advice_error"].notna().sum()),
                     "abstained": int(part["abstained"].sum()),
                     "no_verdict": int((clean & part["quality"].isna()).sum()) if judge else pd.NA,
                     "problems": scored(part, judge)["problem_id"].nunique(), "leaky": leaky[(model, memory)]})
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS)).astype({"no_verdict": "Int64"})


def band_shares(bands: pd.DataFrame | None, leaky: dict[tuple[str, str], bool], options: Any) -> pd.DataFrame:
    """Share of recommendations per band (and at least GOOD), per model and pooled over models."""
    rows = []
    if bands is not None:
        pooled = bands.assign(model=ALL_MODELS)
        for table in (bands, pooled):
            for (model, memory), part in table.groupby(["model", "memory"], sort=True):
                is_leaky = any(v for (m, mem), v in leaky.items() if mem == memory and model in (m, ALL_MODELS))
                for band in BAND_COLUMNS:
                    rows.append({"model": model, "memory": memory, "band": band, "leaky": is_leaky,
                                 **mean_ci(part[band], part["family"], options.bootstrap, options.seed)})
    return pd.DataFrame(rows, columns=list(BAND_TABLE_COLUMNS))
