"""Statistics against scipy/statsmodels and hand-computed values on small fixed tables."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import ttost_paired

from spark_eval.config import ReportConfig
from spark_eval.stats import ResultsError, analyse, load_frame, load_runs, to_parquet
from spark_eval.stats.bootstrap import cluster_bootstrap, cluster_ci, mean_ci
from spark_eval.stats.paired import holm, mcnemar_p, rank_biserial, tost_paired_p, wilcoxon_p
from spark_eval.stats.units import choose_judge
from tests.fakes.runs import HELPFULNESS_JUDGE, QUALITY_JUDGE, record, write_run

OPTIONS = ReportConfig(bootstrap=500, seed=3)

# -- paired tests ----------------------------------------------------------------------------------------

TIES_AND_ZEROS = [0, 1, 1, 2, -1, 3, 0, 1]


def test_wilcoxon_matches_scipy_with_ties_and_zeros():
    expected = sps.wilcoxon(TIES_AND_ZEROS, zero_method="pratt", correction=False, method="auto").pvalue
    assert wilcoxon_p(TIES_AND_ZEROS) == pytest.approx(expected)


def test_wilcoxon_is_the_exhaustive_sign_flip_test_of_pratt_ranks():
    # Pratt: rank |d| with the zeros, then drop the zeros' ranks; |d| = 0,0,1,1,1,1,2,3 -> ranks of the
    # non-zero ones: 1s share (3+4+5+6)/4 = 4.5, 2 -> 7, 3 -> 8.
    ranks = np.array([4.5, 4.5, 7, 4.5, 8, 4.5])  # for d = 1, 1, 2, -1, 3, 1
    observed = min(ranks.sum() - 4.5, 4.5)  # R- = 4.5 (the single -1)
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(ranks))]
    total = ranks.sum()
    p = np.mean([min(f, total - f) <= observed for f in flips])
    assert wilcoxon_p(TIES_AND_ZEROS) == pytest.approx(p)


def test_wilcoxon_of_all_zero_differences_is_one():
    assert wilcoxon_p([0, 0, 0, 0]) == 1.0
    assert np.isnan(wilcoxon_p([]))


def test_rank_biserial_by_hand():
    # non-zero d = 1, 1, 2, -1, 3, 1: |d| ranks 2.5 (x4, the ones), 5, 6; R- = 2.5, R+ = 18.5, total 21
    assert rank_biserial(TIES_AND_ZEROS) == pytest.approx((18.5 - 2.5) / 21)
    assert rank_biserial([2, 1, 3]) == 1.0
    assert np.isnan(rank_biserial([0, 0]))


def test_mcnemar_exact_on_a_two_by_two_table():
    # both pass 5, baseline only 2, condition only 7, both fail 3
    base = [1] * 5 + [1] * 2 + [0] * 7 + [0] * 3
    cond = [1] * 5 + [0] * 2 + [1] * 7 + [0] * 3
    by_hand = 2 * sum(sps.binom.pmf(k, 9, 0.5) for k in range(3))  # 2 * (1 + 9 + 36) / 512
    assert mcnemar_p(base, cond) == pytest.approx(by_hand) == pytest.approx(92 / 512)
    assert mcnemar_p(base, cond) == pytest.approx(mcnemar([[5, 2], [7, 3]], exact=True).pvalue)
    assert mcnemar_p([1, 0], [1, 0]) == 1.0


def test_tost_paired_against_statsmodels_and_the_t_formula():
    cond = np.array([4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 4.0, 4.5])
    base = np.array([4.0, 4.5, 4.5, 4.5, 4.5, 5.0, 4.0, 4.0])
    margin = 0.5
    assert tost_paired_p(cond, base, margin) == pytest.approx(ttost_paired(cond, base, -margin, margin)[0])
    d = cond - base
    se = d.std(ddof=1) / np.sqrt(len(d))
    lower = sps.t.sf((d.mean() + margin) / se, len(d) - 1)
    upper = sps.t.cdf((d.mean() - margin) / se, len(d) - 1)
    assert tost_paired_p(cond, base, margin) == pytest.approx(max(lower, upper))


def test_holm_by_hand_keeps_missing_p_values_missing():
    adjusted = holm([0.01, np.nan, 0.04, 0.03])
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    np.testing.assert_allclose(adjusted, [0.03, np.nan, 0.06, 0.06])


# -- clustered bootstrap ---------------------------------------------------------------------------------

VALUES = [1.0, 2.0, 3.0, 10.0, 0.0, 4.0, 4.0]
CLUSTERS = ["b", "b", "a", "c", "c", "d", "a"]


def test_clustered_bootstrap_matches_a_hand_run_of_the_same_resampling():
    rng = np.random.default_rng(7)
    names = sorted(set(CLUSTERS))
    draws = rng.integers(0, len(names), size=(200, len(names)))
    by_hand = []
    for row in draws:
        chosen = [v for i in row for v, c in zip(VALUES, CLUSTERS) if c == names[i]]
        by_hand.append(sum(chosen) / len(chosen))
    np.testing.assert_allclose(cluster_bootstrap(VALUES, CLUSTERS, 200, 7), by_hand)
    low, high = cluster_ci(VALUES, CLUSTERS, 200, 7)
    assert (low, high) == pytest.approx(tuple(np.percentile(by_hand, [2.5, 97.5])))


def test_clustered_bootstrap_ignores_row_order_and_is_fixed_by_its_seed():
    order = [3, 0, 6, 1, 5, 2, 4]
    shuffled = cluster_bootstrap([VALUES[i] for i in order], [CLUSTERS[i] for i in order], 100, 1)
    np.testing.assert_allclose(shuffled, cluster_bootstrap(VALUES, CLUSTERS, 100, 1))
    assert not np.allclose(cluster_bootstrap(VALUES, CLUSTERS, 100, 2), shuffled)


def test_one_cluster_or_constant_values_give_a_degenerate_interval():
    assert cluster_ci([1.0, 2.0, 3.0], ["a", "a", "a"], 100, 0) == (2.0, 2.0)
    assert mean_ci([4.0] * 5, list("abcde"), 100, 0) == {"n": 5, "families": 5, "mean": 4.0, "ci_low": 4.0,
                                                          "ci_high": 4.0}


# -- loading ---------------------------------------------------------------------------------------------

def _two_runs(tmp_path, leaky_record=False):
    base = [record(1, "m", "none", passed=True, scores=[4, 5], library="Numpy", origin=9),
            record(2, "m", "none", passed=False)]
    cond = [record(1, "m", "spark", passed=True, scores=[5], band="GOOD", library="Numpy", origin=9),
            {**record(2, "m", "spark", passed=True, scores=[3]), "leaky": leaky_record}]
    write_run(tmp_path / "m__none__s0", base)
    write_run(tmp_path / "m__spark__s0", cond)


def test_tidy_frame_has_a_row_per_judgment_and_keeps_unjudged_records(tmp_path):
    _two_runs(tmp_path)
    frame = load_frame(str(tmp_path / "*"))
    assert len(frame) == 2 + 1 + 2 + 1  # 4+5 | none | 5 + GOOD | 3
    unjudged = frame[frame["judge"].isna()]
    assert list(unjudged["key"]) == ["2/e0/r0"] and unjudged["kind"].isna().all()
    first = frame[(frame["memory"] == "spark") & (frame["problem_id"] == 1)]
    assert set(first["kind"]) == {"quality", "helpfulness"}
    assert first["family"].iloc[0] == "Numpy/9" and first["band"].dropna().tolist() == ["GOOD"]
    assert frame["passed"].dtype == bool and frame["score"].dtype == float
    assert {"coder_input_tokens", "judge_cost_usd", "rec_leak", "run_dir", "leaky"} <= set(frame.columns)


def test_parquet_round_trip(tmp_path):
    _two_runs(tmp_path)
    frame = load_frame([tmp_path / "m__none__s0", tmp_path / "m__spark__s0"])
    to_parquet(frame, tmp_path / "f.parquet")
    back = pd.read_parquet(tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_a_run_is_leaky_by_its_manifest_or_by_any_record(tmp_path):
    _two_runs(tmp_path, leaky_record=True)
    runs = {r.memory: r for r in load_runs(str(tmp_path / "*"))}
    assert runs["spark"].leaky and not runs["none"].leaky
    write_run(tmp_path / "m__none__s0", runs["none"].records, leaky=True)
    assert all(r.leaky for r in load_runs(str(tmp_path / "*")))


def test_no_matching_run_directory_names_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    for given in (str(tmp_path / "nothing*"), str(tmp_path / "*"), ""):
        with pytest.raises(ResultsError, match="results='results/<experiment>/\\*'"):
            load_runs(given)


def test_two_runs_of_one_condition_are_refused(tmp_path):
    write_run(tmp_path / "a" / "m__none__s0", [record(1, "m", "none")])
    write_run(tmp_path / "b" / "m__none__s0", [record(1, "m", "none")])
    with pytest.raises(ResultsError, match="narrow results= to one experiment"):
        load_runs(str(tmp_path / "*" / "*"))


def test_a_torn_last_line_is_skipped_and_the_file_left_to_its_writer(tmp_path):
    path = write_run(tmp_path / "m__none__s0", [record(1, "m", "none"), record(2, "m", "none")])
    with (path / "records.jsonl").open("a") as f:
        f.write(json.dumps(record(3, "m", "none"))[:40])
    before = (path / "records.jsonl").read_bytes()
    assert len(load_runs(str(path))[0].records) == 2
    assert (path / "records.jsonl").read_bytes() == before  # a run still writing it keeps its bytes


def test_several_judges_of_a_kind_need_a_choice(tmp_path):
    frame = pd.DataFrame({"kind": ["quality", "quality", "helpfulness"], "judge": ["q/a", "q/b", "h/a"]})
    with pytest.raises(ResultsError, match="report.quality_judge=<name>"):
        choose_judge(frame, "quality", "")
    assert choose_judge(frame, "quality", "q/b") == "q/b"
    assert choose_judge(frame, "helpfulness", "") == "h/a"
    with pytest.raises(ResultsError, match="choose one of: q/a, q/b"):
        choose_judge(frame, "quality", "q/c")


# -- comparisons -----------------------------------------------------------------------------------------

def _experiment(tmp_path):
    """Model `small` gains with spark on 6 problems (3 families); `large` has a higher baseline."""
    rows = {"small": ([3, 3, 4, 4, 2, 3], [4, 5, 4, 5, 3, 3], [0, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 1]),
            "large": ([4, 5, 4, 5, 3, 4], [4, 5, 4, 5, 4, 4], [1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1])}
    for model, (q_none, q_spark, p_none, p_spark) in rows.items():
        for memory, scores, passes in (("none", q_none, p_none), ("spark", q_spark, p_spark)):
            write_run(tmp_path / f"{model}__{memory}__s0", [
                record(pid, model, memory, passed=bool(p), scores=[s], origin=pid // 2, library="Scipy")
                for pid, (s, p) in enumerate(zip(scores, passes))])
    return analyse(load_runs(str(tmp_path / "*")), OPTIONS)


def test_comparisons_pair_each_condition_with_its_baseline(tmp_path):
    table = _experiment(tmp_path).comparisons.set_index(["model", "metric", "baseline"])
    quality = table.loc[("small", "quality", "none")]
    diffs = np.array([1, 2, 0, 1, 1, 0])
    assert quality["n"] == 6 and quality["families"] == 3
    assert quality["mean_diff"] == pytest.approx(diffs.mean())
    assert quality["test"] == "Wilcoxon signed-rank (Pratt)"
    assert quality["p_value"] == pytest.approx(sps.wilcoxon(diffs, zero_method="pratt", method="auto").pvalue)
    assert quality["rank_biserial"] == pytest.approx(1.0)
    assert quality["ci_low"] <= quality["mean_diff"] <= quality["ci_high"]
    passes = table.loc[("small", "pass", "none")]
    assert passes["test"] == "McNemar exact" and passes["mean_diff"] == pytest.approx(2 / 6)
    assert passes["p_value"] == pytest.approx(mcnemar([[3, 0], [2, 1]], exact=True).pvalue) == 0.5


def test_equivalence_is_tested_against_stronger_baselines_only_and_holm_covers_every_row(tmp_path):
    frame = _experiment(tmp_path).comparisons
    tost = frame[frame["test"].str.startswith("TOST")]
    assert list(zip(tost["model"], tost["baseline"])) == [("small", "large/none")]
    small_spark, large_none = [4, 5, 4, 5, 3, 3], [4, 5, 4, 5, 3, 4]
    assert tost["p_value"].iloc[0] == pytest.approx(ttost_paired(
        np.array(small_spark, float), np.array(large_none, float), -0.1, 0.1)[0])
    np.testing.assert_allclose(frame["p_holm"], holm(frame["p_value"]))
    assert list(frame.columns[:11]) == ["model", "condition", "baseline", "metric", "judge", "n", "families",
                                        "baseline_mean", "condition_mean", "mean_diff", "ci_low"]


def test_pass_rates_averaged_over_seeds_use_the_signed_rank_test(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none", passed=p % 2 == 0) for p in range(6)])
    for seed in (0, 1):
        write_run(tmp_path / f"m__spark__s{seed}",
                  [record(p, "m", "spark", passed=seed == 0 or p < 3, seed=seed) for p in range(6)])
    row = analyse(load_runs(str(tmp_path / "*")), OPTIONS).comparisons.iloc[0]
    assert row["test"] == "Wilcoxon signed-rank (Pratt)" and row["n"] == 6
    assert row["condition_mean"] == pytest.approx(np.mean([1, 1, 1, 0.5, 0.5, 0.5]))


def test_breakdown_and_helpfulness_shares(tmp_path):
    _two_runs(tmp_path)
    analysis = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    by_library = analysis.breakdown[(analysis.breakdown["by"] == "library") & (analysis.breakdown["metric"] == "pass")]
    assert dict(zip(by_library["group"], by_library["mean_diff"])) == {"Numpy": 0.0, "Pandas": 1.0}
    bands = analysis.bands.set_index(["model", "band"])
    assert bands.loc[("m", "GOOD"), "mean"] == 1.0 and bands.loc[("m", "at least GOOD"), "mean"] == 1.0
    assert bands.loc[("all models", "EXTREMELY HELPFUL"), "n"] == 1
    assert analysis.judges == {"quality": QUALITY_JUDGE, "helpfulness": HELPFULNESS_JUDGE}
