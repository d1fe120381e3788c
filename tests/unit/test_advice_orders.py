"""Advice checked against the reference's APIs, and stream order as a random factor: exact values on small runs."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from spark_eval.config import ReportConfig
from spark_eval.report import write_report
from spark_eval.stats import analyse, load_runs
from spark_eval.stats.advice import ADVICE_COLUMNS
from spark_eval.stats.bootstrap import cluster_ci
from spark_eval.stats.load import COLUMNS
from spark_eval.stats.orders import ORDER_COLUMNS
from tests.fakes.runs import record, write_run

OPTIONS = ReportConfig(bootstrap=400, seed=2)

# problem: (api_labels, api_hits, passed); origin family pid // 2
CHECKED = {
    0: (["pandas.DataFrame.pivot", "pandas.melt"], ["pandas.melt"], True),  # hit, passed
    1: (["numpy.argsort"], [], False),  # miss, failed
    2: (["numpy.argsort"], ["numpy.argsort"], False),  # hit, failed
    3: ([], [], True),  # labelled with no API: not counted as labelled
    4: (None, None, True),  # not checked
    5: (["scipy.stats.ttest_ind"], [], False),  # miss, failed
}


@pytest.fixture
def advised(tmp_path):
    """m/spark: the records of CHECKED, one whose advice failed (not advised) and one that ended in an error
    after its advice named an API (advised and labelled, but no pass verdict); m/rag: advice never checked."""
    spark = [record(p, "m", "spark", passed=ok, origin=p // 2, api_labels=labels, api_hits=hits)
             for p, (labels, hits, ok) in CHECKED.items()]
    spark.append(record(6, "m", "spark", passed=True, origin=3, advice_error="unusable reply",
                        api_labels=["numpy.argsort"], api_hits=[]))
    broken = record(7, "m", "spark", origin=3, api_labels=["numpy.argsort"], api_hits=["numpy.argsort"])
    spark.append({**broken, "exec": None, "error": "APIStatusError: 503"})
    write_run(tmp_path / "m__spark__s0", spark)
    write_run(tmp_path / "m__rag__s0", [record(p, "m", "rag", origin=p // 2) for p in range(8)])
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none", passed=p < 3, origin=p // 2) for p in range(8)])
    return load_runs(str(tmp_path / "*"))


def test_tidy_frame_appends_the_api_columns(advised):
    frame = analyse(advised, OPTIONS).frame
    assert list(COLUMNS[-2:]) == ["api_labels", "api_hits"] and list(frame.columns) == list(COLUMNS)
    spark = frame[frame["memory"] == "spark"].set_index("problem_id")
    assert spark.loc[0, "api_labels"] == "pandas.DataFrame.pivot pandas.melt"
    assert spark.loc[0, "api_hits"] == "pandas.melt"
    assert spark.loc[1, "api_hits"] == "" and spark.loc[3, "api_labels"] == ""
    assert pd.isna(spark.loc[4, "api_labels"]) and pd.isna(spark.loc[4, "api_hits"])  # not checked
    assert frame.loc[frame["memory"] == "none", "api_hits"].isna().all()


def test_advice_table_shares_and_split_pass_rates_are_exact(advised):
    table = analyse(advised, OPTIONS).advice
    assert list(table.columns) == list(ADVICE_COLUMNS)
    assert table[["model", "memory"]].values.tolist() == [["m", "spark"]]  # rag and none were never checked
    row = table.iloc[0]
    # advised: 0-5 and 7 (6's advice failed); labelled: 0, 1, 2, 5, 7; named: 0, 2, 7
    assert row[["advised", "labelled", "named"]].tolist() == [7, 5, 3]
    assert row["named_share"] == pytest.approx(3 / 5)
    # hit: 0 (passed), 2 (failed), 7 left out (an error has no pass verdict); miss: 1, 5 (both failed)
    assert row[["hit_n", "miss_n"]].tolist() == [2, 2]
    assert row["hit_pass"] == pytest.approx(0.5) and row["miss_pass"] == 0.0
    # families of the labelled records: 0 (0, 1), 1 (2), 2 (5), 3 (7)
    assert row["families"] == 4
    expected = cluster_ci([1.0, 0.0, 1.0, 0.0, 1.0], ["Pandas/0", "Pandas/0", "Pandas/1", "Pandas/2", "Pandas/3"],
                          OPTIONS.bootstrap, OPTIONS.seed)
    assert (row["named_ci_low"], row["named_ci_high"]) == pytest.approx(expected)
    assert row["named_ci_low"] <= row["named_share"] <= row["named_ci_high"]


def test_report_writes_advice_csv_and_section(advised, tmp_path):
    write_report(advised, OPTIONS, tmp_path / "out", {})
    frame = pd.read_csv(tmp_path / "out" / "advice.csv")
    assert frame[["memory", "labelled", "named"]].values.tolist() == [["spark", 5, 3]]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Advice checked against the reference's APIs</h2>" in html
    data = json.loads(re.search(r"<script type='application/json' id='browser-data'>(.*?)</script>", html).group(1))
    records = [dict(zip(data["fields"], r)) for r in data["records"]]
    spark = data["conditions"].index("m/spark/s0")
    first = next(r for r in records if r["condition"] == spark and r["problem"] == 0)
    labels, hits = first["apis"]
    assert [data["strings"][i] for i in labels] == ["pandas.DataFrame.pivot", "pandas.melt"]
    assert [data["strings"][i] for i in hits] == ["pandas.melt"]
    assert all(r["apis"] is None for r in records if r["condition"] != spark or r["problem"] in (3, 4))


# -- stream orders -----------------------------------------------------------------------------------------

def _passing(path, model, memory, seed, passed):
    write_run(path / f"{model}__{memory}__s{seed}", [record(p, model, memory, passed=p in passed, seed=seed,
                                                            origin=p) for p in range(10)])


@pytest.fixture
def ordered(tmp_path):
    """m/spark over three stream orders (seeds 0, 1, 2); the baseline has seeds 0 and 1 only; m/rag one seed."""
    _passing(tmp_path, "m", "none", 0, range(5))  # 0.5
    _passing(tmp_path, "m", "none", 1, range(6))  # 0.6; pooled per problem: 1 x5, .5, 0 x4 -> 0.55
    _passing(tmp_path, "m", "spark", 0, range(7))  # 0.7 - 0.5 (seed 0's baseline) = +0.2
    _passing(tmp_path, "m", "spark", 1, range(5))  # 0.5 - 0.6 (seed 1's baseline) = -0.1
    _passing(tmp_path, "m", "spark", 2, range(9))  # 0.9 - 0.55 (pooled: no baseline of seed 2) = +0.35
    _passing(tmp_path, "m", "rag", 0, range(8))
    return load_runs(str(tmp_path / "*"))


def test_orders_give_the_mean_and_sd_of_the_effect_over_seeds(ordered):
    table = analyse(ordered, OPTIONS).orders
    assert list(table.columns) == list(ORDER_COLUMNS)
    assert table[["model", "condition", "baseline"]].values.tolist() == [["m", "spark", "none"]]  # rag: one seed
    row = table.iloc[0]
    effects = [0.2, -0.1, 0.35]
    assert row["seeds"] == 3 and row["matched"] == 2 and row["n"] == 10
    assert row["mean_effect"] == pytest.approx(0.15)
    assert row["sd_effect"] == pytest.approx(np.std(effects, ddof=1))
    assert (row["min_effect"], row["max_effect"]) == pytest.approx((-0.1, 0.35))
    assert row["effects"] == "0:+0.2000 1:-0.1000 2:+0.3500"


def test_orders_csv_and_section_only_with_two_seeds(ordered, tmp_path):
    write_report(ordered, OPTIONS, tmp_path / "out", {})
    frame = pd.read_csv(tmp_path / "out" / "orders.csv")
    assert frame["mean_effect"].tolist() == pytest.approx([0.15])
    assert "<h2>Stream order</h2>" in (tmp_path / "out" / "report.html").read_text()
    one_seed = [run for run in ordered if run.seed == 0]
    assert analyse(one_seed, OPTIONS).orders.empty
    write_report(one_seed, OPTIONS, tmp_path / "single", {})
    assert not (tmp_path / "single" / "orders.csv").exists()
    assert "<h2>Stream order</h2>" not in (tmp_path / "single" / "report.html").read_text()
