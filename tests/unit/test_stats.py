"""Statistics against scipy/statsmodels and hand-computed values on small fixed tables."""
from __future__ import annotations

import json
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttost_paired

from spark_eval.config import ReportConfig
from spark_eval.stats import ResultsError, analyse, load_frame, load_runs, to_parquet
from spark_eval.stats.bootstrap import cluster_bootstrap, cluster_ci, expanded_tail, mean_ci
from spark_eval.stats.paired import (FLIPS, cluster_se, holm, rank_biserial, sign_flip_name, sign_flip_p,
                                     tost_cluster_p)
from spark_eval.stats.units import choose_judge
from tests.fakes.runs import HELPFULNESS_JUDGE, QUALITY_JUDGE, record, write_run

OPTIONS = ReportConfig(bootstrap=500, seed=3)

# -- paired tests ----------------------------------------------------------------------------------------

# four origin families: a's problems differ by 2 and 1 (total 3), b and c by 1 each, d by +1 and -1 (total 0)
DIFFS = [2, 1, 1, 1, 1, -1]
FAMILIES = ["a", "a", "b", "c", "d", "d"]


def test_sign_flip_enumerates_the_eight_flips_of_three_families_by_hand():
    # totals 3, 1, 1 (d's total 0 cannot move the statistic and is left out); observed |3 + 1 + 1| = 5;
    # the 8 flips give |+-3 +-1 +-1| = 5, 3, 3, 1, 1, 3, 3, 5: none goes further, two reach 5: mid-p (0 + 2/2)/8
    assert sign_flip_p(DIFFS, FAMILIES, seed=0) == 1 / 8
    assert sign_flip_name(DIFFS, FAMILIES) == "paired sign-flip mid-p over origin families (exact)"


def test_sign_flip_moves_a_family_as_one_unit():
    # four +1 differences: as four families 2 of the 16 flips reach |4| (and none goes further); as one family,
    # both of its 2 flips do
    assert sign_flip_p([1, 1, 1, 1], ["a", "b", "c", "d"], seed=0) == 1 / 16
    assert sign_flip_p([1, 1, 1, 1], ["a", "a", "a", "a"], seed=0) == 0.5


def test_sign_flip_is_the_mid_p_of_scipys_enumerated_sign_flips_of_family_totals():
    rng = np.random.default_rng(5)
    totals = rng.integers(-4, 6, size=11).astype(float)
    found = sps.permutation_test((totals,), np.sum, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided")
    flipped, observed = np.abs(found.null_distribution), abs(found.statistic)
    assert len(flipped) == 2 ** 11
    expected = np.mean(flipped > observed + 1e-9) + np.mean(np.isclose(flipped, observed)) / 2
    assert found.pvalue == pytest.approx(np.mean(flipped >= observed - 1e-9))  # scipy's: ties counted whole
    assert np.isclose(flipped, observed).sum() >= 2  # so the mid-p is below it
    assert sign_flip_p(totals, [f"f{i:02d}" for i in range(11)], seed=0) == pytest.approx(expected)


def test_sign_flip_beyond_sixteen_families_draws_seeded_flips_with_the_plus_one_correction():
    # 20 families with totals +-1, observed |12 - 8| = 4: |sum of 20 random signs| > 4 has probability
    # 2 P(Bin(20, .5) >= 13) and = 4 probability 2 P(Bin(20, .5) = 12); the mid-p counts the latter half
    diffs, families = [1.0] * 12 + [-1.0] * 8, [f"f{i:02d}" for i in range(20)]
    p = sign_flip_p(diffs, families, seed=4)
    assert p == pytest.approx(2 * sps.binom.sf(12, 20, 0.5) + sps.binom.pmf(12, 20, 0.5), abs=0.02)  # 4 SEs
    assert round(2 * p * (FLIPS + 1)) == pytest.approx(2 * p * (FLIPS + 1))  # (g + (e + 1) / 2) / (m + 1)
    assert sign_flip_p(diffs, families, seed=4) == p != sign_flip_p(diffs, families, seed=5)
    assert sign_flip_name(diffs, families) == "paired sign-flip mid-p over origin families (10000 random flips)"
    assert sign_flip_p([1.0] * 20, families, seed=0) == 0.5 / (FLIPS + 1)  # only the observed flip is as far


def test_sign_flip_false_positive_rate_is_near_alpha_where_the_plain_permutation_p_is_conservative():
    # K families whose totals are +1 or -1 (0/1 outcomes, one discordant problem each), K = 5..16: under the null
    # every sign pattern is equally likely and p depends on the number j of +1 only, so the chance of p < .05 is
    # exact: the sum of C(K, j) / 2**K over the j rejected. The plain permutation p (ties counted whole) rejects
    # 2.1% of the time on average over these K, at most 3.9%; the mid-p 4.5% on average, at most 7.7% (K = 16).
    rates = []
    for k in range(5, 17):
        families = [f"f{i:02d}" for i in range(k)]
        rates.append(sum(comb(k, j) / 2 ** k for j in range(k + 1)
                         if sign_flip_p([1.0] * j + [-1.0] * (k - j), families, seed=0) < 0.05))
    assert 0.035 <= np.mean(rates) <= 0.065
    assert max(rates) <= 0.08


def test_sign_flip_of_no_or_zero_differences():
    assert sign_flip_p([0, 0, 1, -1], ["a", "b", "c", "c"], seed=0) == 1.0
    assert np.isnan(sign_flip_p([], [], seed=0))


def test_cluster_tost_by_hand_with_unequal_families():
    # d = .2, .2 | -.1 | 0 in families a, a, b, c: totals .4, -.1, 0 over 2, 1, 1 problems; mean .3 / 4 = .075;
    # residuals T_f - mean n_f = .25, -.175, -.075; se = sqrt(3/2 * .09875) / 4; 2 degrees of freedom
    diffs, families = [0.2, 0.2, -0.1, 0.0], ["a", "a", "b", "c"]
    se = np.sqrt(1.5 * 0.09875) / 4
    assert cluster_se(diffs, families) == pytest.approx((0.075, se, 3))
    by_hand = max(sps.t.sf((0.075 + 0.5) / se, 2), sps.t.cdf((0.075 - 0.5) / se, 2))
    assert tost_cluster_p(diffs, families, 0.5) == pytest.approx(by_hand)
    assert np.isnan(tost_cluster_p([0.1, 0.2], ["a", "a"], 0.5))  # one family: no error to estimate


def test_cluster_tost_with_equal_families_is_the_paired_tost_of_family_means():
    cond = np.array([4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 4.0, 4.5])
    base = np.array([4.0, 4.5, 4.5, 4.5, 4.5, 5.0, 4.0, 4.0])
    families = ["a", "a", "b", "b", "c", "c", "d", "d"]
    means = lambda x: x.reshape(4, 2).mean(axis=1)  # noqa: E731
    expected = ttost_paired(means(cond), means(base), -0.5, 0.5)[0]
    assert tost_cluster_p(cond - base, families, 0.5) == pytest.approx(expected)
    assert tost_cluster_p([0.1, 0.1, 0.1, 0.1], families[:4], 0.5) == 0.0  # no spread, inside the margins
    assert tost_cluster_p([0.6, 0.6, 0.6, 0.6], families[:4], 0.5) == 1.0


def test_rank_biserial_by_hand():
    # non-zero d = 1, 1, 2, -1, 3, 1: |d| ranks 2.5 (x4, the ones), 5, 6; R- = 2.5, R+ = 18.5, total 21
    assert rank_biserial([0, 1, 1, 2, -1, 3, 0, 1]) == pytest.approx((18.5 - 2.5) / 21)
    assert rank_biserial([2, 1, 3]) == 1.0
    assert np.isnan(rank_biserial([0, 0]))


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
    # the expanded percentile interval over 4 clusters: z = sqrt(4/3) t_{3, .975} = 3.67, so 0.012% each side
    tail = sps.norm.sf(np.sqrt(4 / 3) * sps.t.ppf(0.975, 3))
    assert tail == pytest.approx(expanded_tail(4)) and tail < 0.001
    assert (low, high) == pytest.approx(tuple(np.percentile(by_hand, [100 * tail, 100 * (1 - tail)])))


def test_expanded_tail_approaches_the_plain_percentile_with_many_clusters():
    assert expanded_tail(1) == expanded_tail(0) == pytest.approx(0.025)
    tails = [expanded_tail(k) for k in (2, 9, 45, 450, 100_000)]
    assert tails == sorted(tails) and tails[1] == pytest.approx(0.0072, abs=1e-4)
    assert tails[-1] == pytest.approx(0.025, abs=1e-4)


def test_clustered_interval_covers_the_true_mean_near_95_percent_of_the_time_at_eight_families():
    # A/A at few families: 8 families of 2 problems, a family effect and a problem effect, true mean 0. The plain
    # percentile interval (2.5, 97.5) of the same bootstrap means covers 0 in 89% of these 1000 replications (too
    # narrow: the bootstrap's variance divides by K, not K - 1, and its tails are normal); the expanded one in 94%.
    rng = np.random.default_rng(11)
    families = np.repeat([f"f{i}" for i in range(8)], 2)
    covered, plain = [], []
    for rep in range(1000):
        values = np.repeat(rng.normal(size=8), 2) + rng.normal(size=16)
        low, high = cluster_ci(values, families, 2000, rep)
        covered.append(low <= 0 <= high)
        means = cluster_bootstrap(values, families, 2000, rep)
        plain.append(np.percentile(means, 2.5) <= 0 <= np.percentile(means, 97.5))
    assert np.mean(plain) < 0.91
    assert 0.925 <= np.mean(covered) <= 0.975


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
    assert {"coder_input_tokens", "judge_cost_usd", "rec_leak", "run_dir", "leaky", "advised",
            "advice_error"} <= set(frame.columns)
    assert frame["advised"].dtype == bool and frame["error"].isna().all()


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
    write_run(tmp_path / "m__none__s0", [r.to_json() for r in runs["none"].records], leaky=True)
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
    diffs = np.array([1, 2, 0, 1, 1, 0])  # families (0, 1), (2, 3), (4, 5): totals 3, 1, 1
    assert quality["n"] == 6 and quality["families"] == 3
    assert quality["mean_diff"] == pytest.approx(diffs.mean())
    assert quality["test"] == "paired sign-flip mid-p over origin families (exact)"
    assert quality["p_value"] == 1 / 8  # |3 + 1 + 1| = 5 is reached by 2 of the 8 flips, passed by none: (0 + 2/2)/8
    assert quality["rank_biserial"] == pytest.approx(1.0)
    assert quality["ci_low"] <= quality["mean_diff"] <= quality["ci_high"]
    passes = table.loc[("small", "pass", "none")]
    assert passes["test"] == quality["test"] and passes["mean_diff"] == pytest.approx(2 / 6)
    assert passes["p_value"] == 0.5  # both gains are in family 0: one family, and its flip is as far (mid-p 1/2)


def test_epochs_are_averaged_per_problem_before_pairing(tmp_path):
    """Two epochs of a problem are one unit; a family's problems flip together; hand-computed p-values."""
    # problem: origin family, baseline quality, spark quality per epoch, spark passes per epoch
    spark = {0: (0, (5, 5), (1, 1)), 1: (0, (4, 4), (1, 0)), 2: (1, (5, 3), (1, 1)), 3: (2, (4, 4), (1, 0)),
             4: (3, (4, 4), (1, 1)), 5: (3, (2, 2), (0, 0))}
    none, spark_records = [], []
    for pid, (origin, scores, passes) in spark.items():
        for epoch in (0, 1):
            none.append(record(pid, "m", "none", passed=False, scores=[3], origin=origin, epoch=epoch))
            spark_records.append(record(pid, "m", "spark", passed=bool(passes[epoch]), scores=[scores[epoch]],
                                        origin=origin, epoch=epoch))
    write_run(tmp_path / "m__none__s0", none)
    write_run(tmp_path / "m__spark__s0", spark_records)
    table = analyse(load_runs(str(tmp_path / "*")), OPTIONS).comparisons.set_index("metric")
    # quality per problem: 5, 4, 4, 4, 4, 2 against 3 -> 2, 1, 1, 1, 1, -1; family totals 3, 1, 1, 0
    quality = table.loc["quality"]
    assert (quality["n"], quality["families"]) == (6, 4)
    assert quality["mean_diff"] == pytest.approx(5 / 6)
    assert quality["p_value"] == 1 / 8  # problem 2's epochs (+2, 0) would be two units if not averaged
    # pass per problem: 1, .5, 1, .5, 1, 0 against 0; family totals 1.5, 1, .5, 1: only the two flips with every
    # sign alike reach |4| and none goes further, so the mid-p is (0 + 2/2)/16
    passes = table.loc["pass"]
    assert (passes["n"], passes["mean_diff"], passes["p_value"]) == (6, pytest.approx(4 / 6), 1 / 16)


def test_equivalence_is_tested_against_stronger_baselines_only_and_holm_covers_every_row(tmp_path):
    frame = _experiment(tmp_path).comparisons
    tost = frame[frame["test"].str.startswith("TOST")]
    assert list(zip(tost["model"], tost["baseline"])) == [("small", "large/none")]
    assert tost["test"].iloc[0] == "TOST, cluster-robust t over origin families (margin 0.1)"
    # small/spark 4 5 | 4 5 | 3 3 against large/none 4 5 | 4 5 | 3 4: equal families, so the paired TOST of
    # the family means 4.5, 4.5, 3 against 4.5, 4.5, 3.5
    assert tost["p_value"].iloc[0] == pytest.approx(ttost_paired(
        np.array([4.5, 4.5, 3.0]), np.array([4.5, 4.5, 3.5]), -0.1, 0.1)[0])
    assert tost["n"].iloc[0] == 6 and tost["families"].iloc[0] == 3
    np.testing.assert_allclose(frame["p_holm"], holm(frame["p_value"]))
    assert list(frame.columns[:12]) == ["model", "condition", "baseline", "metric", "judge", "judge_signal", "n",
                                        "families",
                                        "baseline_mean", "condition_mean", "mean_diff", "ci_low"]
    assert {"test", "p_value", "p_holm", "ci_high"} <= set(frame.columns)


def test_pass_rates_are_averaged_over_seeds_per_problem(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none", passed=p % 2 == 0) for p in range(6)])
    for seed in (0, 1):
        write_run(tmp_path / f"m__spark__s{seed}",
                  [record(p, "m", "spark", passed=seed == 0 or p < 3, seed=seed) for p in range(6)])
    row = analyse(load_runs(str(tmp_path / "*")), OPTIONS).comparisons.iloc[0]
    assert row["n"] == 6 and row["condition_mean"] == pytest.approx(np.mean([1, 1, 1, 0.5, 0.5, 0.5]))
    # d = 0, 1, 0, .5, -.5, .5 (one family each): of the 8 sign patterns of the halves, |1 +-.5 +-.5 +-.5| is 2.5
    # for 1 and 1.5 for 3, and as often with -1: the mid-p is (2 + 6/2)/16
    assert row["p_value"] == 5 / 16


def test_errors_and_missing_verdicts_leave_both_metrics_and_are_counted(tmp_path):
    unparsed = record(1, "m", "spark", passed=True, scores=[4])
    unparsed["judgments"][0].update(score=None, parse_error="no JSON object in the reply")
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none", passed=False, scores=[3]) for p in range(4)])
    write_run(tmp_path / "m__spark__s0", [
        record(0, "m", "spark", passed=True, scores=[5]),
        record(0, "m", "spark", epoch=1, error="APIStatusError: 503 after 3 attempts"),
        unparsed,  # the judge's reply held no verdict
        record(2, "m", "spark", passed=True, scores=[4], advice_error="recommendation unusable: bad JSON"),
        record(3, "m", "spark", passed=False, scores=[4])])
    analysis = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    counts = analysis.counts.set_index("memory")
    assert counts.loc["spark", ["runs", "records", "errors", "advice_given", "advice_errors", "no_verdict",
                                "problems"]].tolist() == [1, 5, 1, 3, 1, 1, 3]
    assert counts.loc["none", ["records", "errors", "advice_given", "advice_errors", "no_verdict",
                               "problems"]].tolist() == [4, 0, 0, 0, 0, 4]
    spark = {metric: units[units["memory"] == "spark"].set_index("problem_id")["value"].to_dict()
             for metric, units in analysis.units.items()}
    assert spark == {"pass": {0: 1.0, 2: 1.0, 3: 0.0}, "quality": {0: 5.0, 2: 4.0, 3: 4.0}}  # the same problems
    table = analysis.comparisons.set_index("metric")
    assert table.loc["pass", "n"] == table.loc["quality", "n"] == 3
    assert table.loc["pass", "mean_diff"] == pytest.approx(2 / 3)
    frame = analysis.frame.drop_duplicates(["key", "memory"]).set_index(["memory", "key"])
    assert frame.loc[("spark", "2/e0/r0"), "advice_error"] == "recommendation unusable: bad JSON"
    assert not frame.loc[("spark", "2/e0/r0"), "advised"] and frame.loc[("spark", "3/e0/r0"), "advised"]


def test_without_a_quality_judge_errors_still_leave_pass_at_1(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(0, "m", "none"), record(1, "m", "none", error="Timeout: coder")])
    analysis = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    assert analysis.units["pass"]["problem_id"].tolist() == [0]
    assert analysis.counts[["errors", "problems"]].values.tolist() == [[1, 1]]
    assert analysis.counts["no_verdict"].isna().all()


def test_breakdown_and_helpfulness_shares(tmp_path):
    _two_runs(tmp_path)
    analysis = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    by_library = analysis.breakdown[(analysis.breakdown["by"] == "library") & (analysis.breakdown["metric"] == "pass")]
    # problem 2 (Pandas) has no quality verdict without spark, so it leaves pass@1 too: only Numpy is compared
    assert dict(zip(by_library["group"], by_library["mean_diff"])) == {"Numpy": 0.0}
    bands = analysis.bands.set_index(["model", "band"])
    assert bands.loc[("m", "GOOD"), "mean"] == 1.0 and bands.loc[("m", "at least GOOD"), "mean"] == 1.0
    assert bands.loc[("all models", "EXTREMELY HELPFUL"), "n"] == 1
    assert analysis.judges == {"quality": QUALITY_JUDGE, "helpfulness": HELPFULNESS_JUDGE}


def test_runs_of_two_benchmarks_are_not_paired(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(i, "m", "none") for i in range(3)])
    other = write_run(tmp_path / "m__spark__s0", [record(i, "m", "spark") for i in range(3)])
    manifest = json.loads((other / "manifest.json").read_text())
    manifest.update(dataset_hash="another", identity={**manifest["identity"], "dataset.name": "pandas_numpy_eval"})
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="different benchmarks or data copies: .*pandas_numpy_eval"):
        load_runs(str(tmp_path / "*"))
    assert len(load_runs(str(tmp_path / "*none*"))) == 1
