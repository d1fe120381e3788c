"""Flips against the baseline: exact counts on runs with known flips, clustered CIs, the per-library split, the
report's flips.csv and Flips section, and the browser's flip lists."""
from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from spark_eval.config import ReportConfig
from spark_eval.report import write_report
from spark_eval.stats import analyse, load_runs
from spark_eval.stats.bootstrap import cluster_ci
from spark_eval.stats.flips import ALL, FLIP_COLUMNS
from tests.fakes.runs import record, write_run

OPTIONS = ReportConfig(bootstrap=400, seed=5)
SPEC_COLUMNS = ["model", "condition", "baseline", "known", "destroyed", "destroyed_rate", "destroyed_ci_low",
                "destroyed_ci_high", "unknown", "rescued", "rescued_rate", "rescued_ci_low", "rescued_ci_high"]
BASELINE_PASSES = {0, 1, 2, 3, 4, 5}  # of problems 0-9
SPARK_PASSES = {2, 3, 4, 5, 6}  # loses 0 and 1, rescues 6


def _library(pid: int) -> str:
    return "Pandas" if pid < 5 else "Numpy"


@pytest.fixture
def flipped(tmp_path):
    """10 problems in 6 origin families (two problems each, pid // 2, split by library): the baseline passes 6,
    spark loses 2 of them and rescues 1 of the 4 others; a second model whose spark run changes nothing."""
    for model, memory, passes in (("m", "none", BASELINE_PASSES), ("m", "spark", SPARK_PASSES),
                                  ("other", "none", {0, 9}), ("other", "spark", {0, 9})):
        write_run(tmp_path / "runs" / f"{model}__{memory}__s0", [
            record(p, model, memory, passed=p in passes, library=_library(p), origin=p // 2) for p in range(10)])
    return load_runs(str(tmp_path / "runs" / "*"))


def test_flips_count_exactly_what_the_condition_lost_and_rescued(flipped):
    table = analyse(flipped, OPTIONS).flips
    whole = table[table["library"] == ALL].set_index("model")
    row = whole.loc["m"]
    assert (row["condition"], row["baseline"]) == ("spark", "none")
    assert row[["known", "destroyed", "unknown", "rescued"]].tolist() == [6, 2, 4, 1]
    assert row["destroyed_rate"] == pytest.approx(2 / 6) and row["rescued_rate"] == pytest.approx(1 / 4)
    assert whole.loc["other", ["known", "destroyed", "unknown", "rescued"]].tolist() == [2, 0, 8, 0]
    assert whole.loc["other", "destroyed_rate"] == 0.0 and whole.loc["other", "rescued_rate"] == 0.0


def test_flip_rates_have_family_clustered_intervals_that_hold_them(flipped):
    row = analyse(flipped, OPTIONS).flips.set_index(["model", "library"]).loc[("m", ALL)]
    for name in ("destroyed", "rescued"):
        assert row[f"{name}_ci_low"] <= row[f"{name}_rate"] <= row[f"{name}_ci_high"]
    assert row["destroyed_ci_low"] < row["destroyed_ci_high"]  # families differ, so the interval is not a point
    # the bootstrap of stats.bootstrap over the families holding a known problem: 0-5 in families 0, 1, 2
    # (Pandas/0, Pandas/1, Pandas/2 and Numpy/2), lost 0 and 1 (both of family Pandas/0)
    known = [p for p in range(10) if p in BASELINE_PASSES]
    lost = [float(p not in SPARK_PASSES) for p in known]
    families = [f"{_library(p)}/{p // 2}" for p in known]
    assert (row["destroyed_ci_low"], row["destroyed_ci_high"]) == pytest.approx(
        cluster_ci(lost, families, OPTIONS.bootstrap, OPTIONS.seed))


def test_flips_per_library_sum_to_the_whole_and_an_empty_denominator_is_nan(flipped):
    table = analyse(flipped, OPTIONS).flips
    assert list(table.columns) == [*SPEC_COLUMNS, "library"] == list(FLIP_COLUMNS)
    mine = table[table["model"] == "m"].set_index("library")
    assert list(mine.index) == [ALL, "Numpy", "Pandas"]
    counts = ["known", "destroyed", "unknown", "rescued"]
    assert mine.loc[["Numpy", "Pandas"], counts].sum().tolist() == mine.loc[ALL, counts].tolist()
    assert mine.loc["Pandas", counts].tolist() == [5, 2, 0, 0]  # problems 0-4: all known, 0 and 1 lost
    assert mine.loc["Numpy", counts].tolist() == [1, 0, 4, 1]  # problems 5-9: 6 rescued
    assert math.isnan(mine.loc["Pandas", "rescued_rate"]) and math.isnan(mine.loc["Pandas", "rescued_ci_low"])
    assert mine.loc["Numpy", "rescued_rate"] == pytest.approx(1 / 4)


def test_a_side_passes_when_its_pass_at_1_is_at_least_a_half(tmp_path):
    """Per problem, the mean over its epochs and seeds decides: 1 of 2 passes is a pass, 0 of 2 a fail."""
    # problem: baseline passes per epoch, spark passes per seed (two seeds, one epoch each)
    cases = {0: ((1, 0), (0, 1)), 1: ((1, 0), (0, 0)), 2: ((0, 0), (1, 0)), 3: ((0, 0), (0, 0)),
             4: ((1, 1), (1, 1))}
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none", passed=bool(ok), epoch=e)
                                         for p, (base, _) in cases.items() for e, ok in enumerate(base)])
    for seed in (0, 1):
        write_run(tmp_path / f"m__spark__s{seed}", [record(p, "m", "spark", passed=bool(spark[seed]), seed=seed)
                                                    for p, (_, spark) in cases.items()])
    row = analyse(load_runs(str(tmp_path / "*")), OPTIONS).flips.iloc[0]
    # known: 0 (.5), 1 (.5), 4 (1); destroyed: 1 (spark 0); unknown: 2, 3; rescued: 2 (spark .5)
    assert row[["known", "destroyed", "unknown", "rescued"]].tolist() == [3, 1, 2, 1]


def test_report_writes_flips_csv_and_a_flips_section(flipped, tmp_path):
    write_report(flipped, OPTIONS, tmp_path / "out", {})
    frame = pd.read_csv(tmp_path / "out" / "flips.csv")
    assert list(frame.columns) == [*SPEC_COLUMNS, "library"]
    row = frame[(frame["model"] == "m") & (frame["library"] == ALL)].iloc[0]
    assert row[["known", "destroyed", "unknown", "rescued"]].tolist() == [6, 2, 4, 1]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Flips</h2>" in html and "destroyed: known answers lost once the condition&#x27;s context" in html
    assert "is at least 0.5" in html and "<summary>Flips per library</summary>" in html
    assert not (tmp_path / "out" / "orders.csv").exists() and "<h2>Stream order</h2>" not in html
    assert not (tmp_path / "out" / "advice.csv").exists()


def test_the_browser_lists_each_pairs_flipped_problems(flipped, tmp_path):
    write_report(flipped, OPTIONS, tmp_path / "out", {})
    html = (tmp_path / "out" / "report.html").read_text()
    data = json.loads(re.search(r"<script type='application/json' id='browser-data'>(.*?)</script>", html).group(1))
    entries = [dict(zip(data["flip_fields"], entry)) for entry in data["flips"]]
    assert [(e["label"], e["baseline"]) for e in entries] == [("m/spark", "none"), ("other/spark", "none")]
    first = entries[0]
    assert [data["conditions"][i] for i in first["condition_runs"]] == ["m/spark/s0"]
    assert [data["conditions"][i] for i in first["baseline_runs"]] == ["m/none/s0"]
    pid = [p[0] for p in data["problems"]]
    assert [pid[i] for i in first["destroyed"]] == [0, 1] and [pid[i] for i in first["rescued"]] == [6]
    assert entries[1]["destroyed"] == entries[1]["rescued"] == []
