"""Per-problem values: one number per model x memory x problem, its records (epochs, repeats, seeds) averaged.

The problem is the unit every claim is about, so it is the unit of every test: a problem run in two epochs
counts once. Quality and pass@1 are computed on the same records, the *scored* ones: a record that ended in
an error is left out of both (it is counted per condition instead), and with a quality judge a record
without its verdict is left out of both too, so both metrics cover the same problems.

When a run draws several samples per problem (`repeat`), pass@k for k > 1 (metric `pass@k`) is one more value
per problem: the unbiased estimate (stats.passk) from the problem's scored samples in each epoch of each run,
averaged over those epochs and runs; an epoch with fewer than k samples is left out of pass@k.
"""
from __future__ import annotations

import pandas as pd

from spark_eval.records import BANDS
from spark_eval.stats.passk import ks_for, pass_at_k
from spark_eval.stats.base import ResultsError

UNIT = ["problem_id"]
"""What pairs a condition with its baseline: the same problem."""
DESCRIBE = ["family", "library", "perturbation_type"]
"""Attributes of a problem carried along for clustering and breakdowns."""
KEYS = ["model", "memory", *UNIT, *DESCRIBE]
RECORD = ["run_dir", "key"]
"""What identifies one record in the tidy frame."""
SAMPLES = ["run_dir", "epoch"]
"""With `KEYS`, what makes a problem's records the samples of one pass@k estimate: one run (a seed), one epoch."""
AT_LEAST_GOOD = "at least GOOD"
BAND_COLUMNS = (*BANDS, AT_LEAST_GOOD)


def choose_judge(frame: pd.DataFrame, kind: str, wanted: str, among: set[str] | None = None) -> str | None:
    """The judge of `kind` to report: `wanted`, else the only one in the runs (or `among` them); None when there is
    none."""
    judges = sorted(among if among is not None else frame.loc[frame["kind"] == kind, "judge"].dropna().unique())
    if wanted:
        if wanted not in judges:
            raise ResultsError(f"report.{kind}_judge={wanted} has no verdicts in these runs; "
                               f"choose one of: {', '.join(judges) or '(none)'}")
        return wanted
    if len(judges) > 1:
        raise ResultsError(f"these runs hold several {kind} judges ({', '.join(judges)}); "
                           f"choose one with report.{kind}_judge=<name>")
    return judges[0] if judges else None


def quality_verdicts(frame: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """The rows of `judge`'s quality verdicts that have a score."""
    return frame[(frame["kind"] == "quality") & (frame["judge"] == judge) & frame["score"].notna()]


def record_table(frame: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """One row per record: `KEYS`, `epoch`, `error`, `advised`, `advice_error`, `abstained`, `passed` (0/1) and
    `quality`, the mean of `judge`'s scores over its repeats (NaN without a verdict)."""
    records = frame.drop_duplicates(RECORD)[[*RECORD, *KEYS, "epoch", "error", "advised", "advice_error", "abstained",
                                                "passed"]]
    scores = quality_verdicts(frame, judge).groupby(RECORD)["score"].mean().rename("quality").reset_index()
    records = records.merge(scores, on=RECORD, how="left")
    return records.assign(passed=records["passed"].astype(float))


def scored(records: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """The records both metrics use: no error and, when there is a quality judge, its verdict."""
    keep = records["error"].isna()
    if judge:
        keep &= records["quality"].notna()
    return records[keep]


def quality_units(records: pd.DataFrame) -> pd.DataFrame:
    """`KEYS + value`: the mean quality per problem over its scored records (see `record_table`, `scored`)."""
    return _mean(records, "quality")


def pass_units(records: pd.DataFrame) -> pd.DataFrame:
    """`KEYS + value`: the share of a problem's scored records that passed DS-1000's tests."""
    return _mean(records, "passed")


def pass_at_k_units(records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`pass@k` -> `KEYS + value` for every k > 1 of K_VALUES up to the most samples a problem has: per problem,
    the unbiased pass@k of each run's epoch with at least k samples, averaged over them. Empty with one sample."""
    counts = records.groupby([*KEYS, *SAMPLES], sort=True)["passed"].agg(["size", "sum"]).reset_index()
    units = {}
    for k in ks_for(int(counts["size"].max()) if len(counts) else 0)[1:]:
        enough = counts[counts["size"] >= k]
        values = [pass_at_k(int(n), int(c), k) for n, c in zip(enough["size"], enough["sum"])]
        units[f"pass@{k}"] = _mean(enough.assign(value=values), "value")
    return units


def band_units(frame: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """`KEYS + one column per band and AT_LEAST_GOOD`: the share of the problem's verdicts in it."""
    rows = frame[(frame["kind"] == "helpfulness") & (frame["judge"] == judge) & frame["band"].notna()
                 & frame["error"].isna()]
    shares = {band: (rows["band"] == band).astype(float) for band in BANDS}
    shares[AT_LEAST_GOOD] = rows["band"].isin(BANDS[:2]).astype(float)
    rows = rows.assign(**shares)
    return rows.groupby(KEYS, sort=True)[list(BAND_COLUMNS)].mean().reset_index()


def paired(units: pd.DataFrame, model: str, condition: str, baseline_model: str, baseline: str) -> pd.DataFrame:
    """`UNIT + DESCRIBE + condition + baseline`: the problems both sides have."""
    cond = _select(units, model, condition).rename(columns={"value": "condition"})
    base = _select(units, baseline_model, baseline).rename(columns={"value": "baseline"})
    return cond.merge(base, on=[*UNIT, *DESCRIBE], how="inner").sort_values(UNIT, ignore_index=True)


def _select(units: pd.DataFrame, model: str, memory: str) -> pd.DataFrame:
    chosen = units[(units["model"] == model) & (units["memory"] == memory)]
    return chosen[[*UNIT, *DESCRIBE, "value"]]


def _mean(records: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per problem, the mean of `column` over its records (every record weighs the same)."""
    return records.groupby(KEYS, sort=True)[column].mean().rename("value").reset_index()
