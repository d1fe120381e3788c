"""pass@k: the unbiased estimator against hand-computed values and brute force, and where it shows (summary.json,
the log's pass table, per-problem units, comparisons and the paper table)."""
from __future__ import annotations

from fractions import Fraction
from itertools import combinations
from math import comb

import pytest

from spark_eval.config import ReportConfig
from spark_eval.records import Record
from spark_eval.stats.passk import K_VALUES, ks_for, mean_pass_at_k, pass_at_k
from spark_eval.stats.summary import format_pass_table, summarize
from spark_eval.report.tables import quality_table
from spark_eval.stats import analyse, load_runs
from tests.fakes.runs import record, synthetic_experiment, write_run


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),                      # pass@1 is c / n
    (5, 2, 2, 1 - 3 / 10),               # 1 - C(3,2)/C(5,2)
    (10, 3, 5, 1 - 21 / 252),            # 1 - C(7,5)/C(10,5)
    (3, 1, 2, 1 - 1 / 3),                # 1 - C(2,2)/C(3,2)
    (4, 0, 2, 0.0),                      # nothing passed
    (4, 3, 2, 1.0),                      # any two samples hold a pass
    (7, 7, 7, 1.0),
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_the_share_of_k_subsets_holding_a_pass():
    for n in range(1, 8):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(samples, k))
                brute = Fraction(sum(any(s) for s in subsets), len(subsets))
                assert pass_at_k(n, c, k) == pytest.approx(float(brute), abs=1e-12), (n, c, k)


def test_product_form_stays_exact_where_binomials_are_huge():
    n, c, k = 200, 3, 100
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert 0.87 < pass_at_k(n, c, k) < 0.88  # not the biased 1 - (1 - c/n)**k = 0.779
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 5), (2, 3, 1), (4, 1, 0)])
def test_pass_at_k_refuses_what_it_cannot_estimate(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_the_ks_reported_are_those_the_samples_allow():
    assert ks_for(1) == (1,)
    assert ks_for(3) == (1, 2)
    assert ks_for(10) == (1, 2, 5, 10)
    assert ks_for(250) == K_VALUES
    assert ks_for(0) == ()


def test_problems_with_fewer_samples_than_k_are_left_out_and_counted():
    assert mean_pass_at_k([(3, 1), (3, 2), (1, 1)], 2) == (pytest.approx((2 / 3 + 1) / 2), 1)
    assert mean_pass_at_k([(1, 1)], 2) == (None, 1)
    assert mean_pass_at_k([(3, 1), (1, 1)], 1) == (pytest.approx((1 / 3 + 1) / 2), 0)


# problem -> (library, passes of its samples); problem 3 has one sample so far (an unfinished run)
SAMPLED = {0: ("Pandas", (True, False, False)), 1: ("Pandas", (True, True, False)),
           2: ("Numpy", (False, False, False)), 3: ("Numpy", (True,))}


def sampled_records(model="m", memory="none", problems=SAMPLED, seed=0):
    return [record(pid, model, memory, passed=passed, library=library, repeat=i, seed=seed, origin=pid // 2)
            for pid, (library, passes) in problems.items() for i, passed in enumerate(passes)]


def test_summary_with_three_samples_per_problem_has_pass_at_k():
    s = summarize(Record.from_json(r) for r in sampled_records())
    assert s["samples"] == 3
    assert s["pass_at_k"] == {"1": pytest.approx((1 / 3 + 2 / 3 + 0 + 1) / 4), "2": pytest.approx((2 / 3 + 1 + 0) / 3)}
    assert s["pass_at_k_left_out"] == {"1": 0, "2": 1}
    assert s["by_library"]["Pandas"]["pass_at_k"] == {"1": pytest.approx(0.5), "2": pytest.approx((2 / 3 + 1) / 2)}
    assert s["by_library"]["Numpy"]["pass_at_k"] == {"1": pytest.approx(0.5), "2": 0.0}
    assert (s["n"], s["passed"]) == (10, 4)  # the record counts stay as they were


def test_summary_counts_samples_per_epoch():
    rows = [record(0, "m", "none", passed=p, epoch=e, repeat=i)
            for e, passes in enumerate([(True, False), (False, False)]) for i, p in enumerate(passes)]
    s = summarize(Record.from_json(r) for r in rows)
    assert s["samples"] == 2
    assert s["pass_at_k"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.5)}


def test_summary_and_pass_table_with_one_sample_are_as_before():
    s = summarize(Record.from_json(record(pid, "m", "none", passed=pid % 2 == 0)) for pid in range(4))
    assert not {"samples", "pass_at_k", "pass_at_k_left_out"} & set(s)
    assert "pass_at_k" not in s["by_library"]["Pandas"]
    table = format_pass_table(s)
    assert "pass@" not in table
    assert table.splitlines()[0] == f"{'group':<20} {'n':>5} {'passed':>7} {'rate':>7} {'infra':>6}"


def test_pass_table_shows_pass_at_k_columns_with_several_samples():
    lines = format_pass_table(summarize(Record.from_json(r) for r in sampled_records())).splitlines()
    assert lines[0].split() == ["group", "n", "passed", "rate", "infra", "pass@2"]
    assert lines[-1].split() == ["all", "10", "4", "0.400", "0", f"{(2 / 3 + 1) / 3:.3f}"]


@pytest.fixture
def sampled_runs(tmp_path):
    """One model without and with a memory, three samples per problem; the memory turns each problem's last
    sample into a pass, and problem 7 has a single sample with it (left out of pass@2)."""
    base = {pid: ("Pandas" if pid < 4 else "Numpy", (pid % 3 == 0, pid % 2 == 0, False)) for pid in range(8)}
    lifted = {pid: (library, (*passes[:2], True)) for pid, (library, passes) in base.items()}
    lifted[7] = ("Numpy", (False,))
    write_run(tmp_path / "m__none__s0", sampled_records("m", "none", base))
    write_run(tmp_path / "m__spark__s0", sampled_records("m", "spark", lifted))
    return load_runs(str(tmp_path / "*"))


def test_pass_at_k_is_a_unit_and_a_paired_comparison(sampled_runs):
    analysis = analyse(sampled_runs, ReportConfig(bootstrap=200))
    assert list(analysis.units) == ["pass", "pass@2"]
    rows = analysis.comparisons.set_index("metric")
    at_2, at_1 = rows.loc["pass@2"], rows.loc["pass"]
    # problems 0-6 paired: baseline pass@2 is 1 - C(3 - c, 2)/3, with the memory one more sample passed
    base = [pass_at_k(3, (pid % 3 == 0) + (pid % 2 == 0), 2) for pid in range(7)]
    cond = [pass_at_k(3, (pid % 3 == 0) + (pid % 2 == 0) + 1, 2) for pid in range(7)]
    assert at_2["n"] == 7 and at_1["n"] == 8
    assert at_2["baseline_mean"] == pytest.approx(sum(base) / 7)
    assert at_2["condition_mean"] == pytest.approx(sum(cond) / 7)
    assert at_2["mean_diff"] == pytest.approx((sum(cond) - sum(base)) / 7)
    assert at_2["ci_low"] <= at_2["mean_diff"] <= at_2["ci_high"]
    assert at_2["test"].startswith("paired sign-flip") and 0 < at_2["p_value"] <= 1
    assert at_1["baseline_mean"] == pytest.approx(sum((p % 3 == 0) + (p % 2 == 0) for p in range(8)) / 24)
    assert set(analysis.breakdown["metric"]) == {"pass", "pass@2"}


def test_paper_table_has_a_pass_at_k_column_with_several_samples(sampled_runs):
    analysis = analyse(sampled_runs, ReportConfig(bootstrap=200))
    table = quality_table(analysis)
    assert table.columns[2:4] == ("Pass@1", "Pass@2") and len(table.align) == len(table.columns)
    means = analysis.conditions.set_index(["memory", "metric"])["mean"]
    assert list(table.data["pass_at_2"]) == pytest.approx([means[("none", "pass@2")], means[("spark", "pass@2")]])
    assert [row[3] for row in table.cells] == [f"{100 * v:.1f}%" for v in table.data["pass_at_2"]]
    assert any(note.startswith("Pass@k:") for note in table.notes)


def test_one_sample_per_problem_adds_no_pass_at_k(tmp_path):
    analysis = analyse(load_runs(synthetic_experiment(tmp_path, ["m"], 12)), ReportConfig(bootstrap=200))
    assert set(analysis.units) == {"pass", "quality"}
    assert not analysis.comparisons["metric"].str.startswith("pass@").any()
    assert "Pass@2" not in quality_table(analysis).columns
