"""Per-unit values: one number per model x memory x (problem, epoch, repeat), repeats and seeds averaged."""
from __future__ import annotations

import pandas as pd

from spark_eval.judge.helpfulness import BANDS
from spark_eval.stats.load import ResultsError

UNIT = ["problem_id", "epoch", "repeat"]
"""What pairs a condition with its baseline: the same problem, epoch and repeat."""
DESCRIBE = ["family", "library", "perturbation_type"]
"""Attributes of a problem carried along for clustering and breakdowns."""
KEYS = ["model", "memory", *UNIT, *DESCRIBE]
AT_LEAST_GOOD = "at least GOOD"
BAND_COLUMNS = (*BANDS, AT_LEAST_GOOD)


def choose_judge(frame: pd.DataFrame, kind: str, wanted: str) -> str | None:
    """The judge of `kind` to report: `wanted`, else the only one in the runs; None when there is none."""
    judges = sorted(frame.loc[frame["kind"] == kind, "judge"].dropna().unique())
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


def quality_units(frame: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """`KEYS + value`: the judge's mean 1-5 score per unit (missing verdicts left out)."""
    return _mean(quality_verdicts(frame, judge), "score")


def pass_units(frame: pd.DataFrame) -> pd.DataFrame:
    """`KEYS + value`: the pass rate per unit (1 or 0 for a single seed); no result counts as not passed."""
    records = frame.drop_duplicates(["run_dir", "key"])
    return _mean(records.assign(passed=records["passed"].astype(float)), "passed")


def band_units(frame: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """`KEYS + one column per band and AT_LEAST_GOOD`: the share of the unit's verdicts in it."""
    rows = frame[(frame["kind"] == "helpfulness") & (frame["judge"] == judge) & frame["band"].notna()]
    shares = {band: (rows["band"] == band).astype(float) for band in BANDS}
    shares[AT_LEAST_GOOD] = rows["band"].isin(BANDS[:2]).astype(float)
    rows = rows.assign(**shares)
    return rows.groupby(KEYS, sort=True)[list(BAND_COLUMNS)].mean().reset_index()


def paired(units: pd.DataFrame, model: str, condition: str, baseline_model: str, baseline: str) -> pd.DataFrame:
    """`UNIT + DESCRIBE + condition + baseline`: the units both sides have."""
    cond = _select(units, model, condition).rename(columns={"value": "condition"})
    base = _select(units, baseline_model, baseline).rename(columns={"value": "baseline"})
    return cond.merge(base, on=[*UNIT, *DESCRIBE], how="inner").sort_values(UNIT, ignore_index=True)


def _select(units: pd.DataFrame, model: str, memory: str) -> pd.DataFrame:
    chosen = units[(units["model"] == model) & (units["memory"] == memory)]
    return chosen[[*UNIT, *DESCRIBE, "value"]]


def _mean(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    return rows.groupby(KEYS, sort=True)[column].mean().rename("value").reset_index()
