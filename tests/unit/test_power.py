"""Power: the MDE of a measured comparison and of a planned design, the verdicts, and the dry run's MDE line."""
from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t
from statsmodels.stats.power import TTestPower

from spark_eval.config import PROJECT_ROOT, ReportConfig, compose_config
from spark_eval.data import build_benchmark
from spark_eval.errors import UserError
from spark_eval.pipeline.plan import plan_run, power_lines
from spark_eval.stats.power import design_from_pilot, mde, planned_mde, planned_se
from spark_eval.report.html import render_html
from spark_eval.stats import analyse, load_runs
from spark_eval.stats.paired import cluster_se, sign_flip_p
from tests.fakes.runs import record, write_run

OPTIONS = ReportConfig()


# -- mde ---------------------------------------------------------------------------------------------------

def test_mde_is_the_sum_of_two_t_quantiles_times_the_standard_error():
    assert mde(0.1, 8) == pytest.approx((student_t.ppf(0.975, 7) + student_t.ppf(0.80, 7)) * 0.1)
    assert mde(0.1, 8) > (1.959964 + 0.841621) * 0.1  # t quantiles: wider than the normal ones at few families
    assert mde(0.1, 100_000) == pytest.approx((1.959964 + 0.841621) * 0.1, rel=1e-3)
    assert mde(0.1, 8, alpha=0.01) > mde(0.1, 8) > mde(0.1, 8, power=0.5)
    assert math.isnan(mde(0.1, 1)) and math.isnan(mde(float("nan"), 10))


@pytest.mark.parametrize("families", [3, 8, 30])
def test_mde_is_close_to_statsmodels_power_of_the_t_test_on_equal_families(families):
    rng = np.random.default_rng(families)
    per_family = 4
    diffs = rng.choice([-1.0, 0.0, 1.0], p=[0.2, 0.6, 0.2], size=families * per_family)
    labels = np.repeat([f"f{i}" for i in range(families)], per_family)
    _, se, k = cluster_se(diffs, labels)
    # equal families: the test of the mean difference is the one-sample t test of the family means
    spread = pd.Series(diffs).groupby(labels).mean().std(ddof=1)
    effect = TTestPower().solve_power(nobs=families, alpha=0.05, power=0.80, alternative="two-sided")
    exact = effect * spread
    assert k == families and se == pytest.approx(spread / math.sqrt(families))
    assert 0.5 < mde(se, k) / exact < 2.0
    assert mde(se, k) == pytest.approx(exact, rel=0.1)  # the approximation is good, not just within a factor


def _simulate(effect, sizes, discordance, rho, rng):
    """Per-problem pass differences in {-1, 0, 1} with mean `effect`: each family shares one draw with chance rho,
    else its problems draw alone; a draw is +1 with chance (d + effect) / 2, -1 with (d - effect) / 2."""
    diffs, families = [], []
    for f, n in enumerate(sizes):
        draws = rng.choice([1.0, -1.0, 0.0], p=[(discordance + effect) / 2, (discordance - effect) / 2,
                                               1 - discordance], size=n)
        diffs += [draws[0]] * n if rng.random() < rho else list(draws)
        families += [f"f{f}"] * n
    return np.array(diffs), families


def test_planned_se_is_the_spread_of_simulated_designs():
    rng = np.random.default_rng(0)
    sizes, discordance, rho = [1, 2, 4, 4, 8], 0.3, 0.5
    means = [_simulate(0.0, sizes, discordance, rho, rng)[0].mean() for _ in range(20_000)]
    assert np.std(means) == pytest.approx(planned_se(discordance, sizes, rho), rel=0.05)
    independent = planned_se(discordance, sizes, 0.0)
    assert independent == pytest.approx(math.sqrt(discordance * sum(sizes)) / sum(sizes))
    assert np.std(means) > 1.2 * independent  # ignoring the families would promise too small an MDE


def test_the_sign_flip_tests_power_crosses_80_percent_within_a_factor_of_two_of_the_planned_mde():
    rng = np.random.default_rng(1)
    sizes, discordance, rho = [12] * 12, 0.8, 0.1  # 12 families: every sign flip enumerated
    planned = planned_mde(discordance, sizes, rho)

    def power(effect, trials=200):
        hits = 0
        for _ in range(trials):
            diffs, families = _simulate(effect, sizes, discordance, rho, rng)
            hits += sign_flip_p(diffs, families, seed=0) < 0.05
        return hits / trials

    assert 0 < planned < discordance / 2
    assert power(planned / 2) < 0.8 < power(min(2 * planned, discordance))
    assert 0.6 < power(planned) < 0.97


def test_planned_mde_by_hand_and_its_refusals():
    # 10 problems in 5 families of 2: var_f = 0.3 * 2 * (1 + 0.5) = 0.9, se = sqrt(4.5) / 10
    assert planned_se(0.3, [2] * 5, 0.5) == pytest.approx(math.sqrt(4.5) / 10)
    assert planned_mde(0.3, [2] * 5, 0.5) == pytest.approx(mde(math.sqrt(4.5) / 10, 5))
    assert planned_mde(0.3, [2] * 5, 1.0) > planned_mde(0.3, [2] * 5, 0.5) > planned_mde(0.3, [1] * 10, 0.5)
    assert math.isnan(planned_mde(0.3, [7], 0.5))  # one family: no test
    with pytest.raises(ValueError, match="between 0 and 1"):
        planned_mde(1.3, [2, 2])
    with pytest.raises(ValueError, match="between 0 and 1"):
        planned_mde(0.3, [2, 2], rho=-0.1)


def test_design_from_pilot_by_hand_and_on_its_own_families_the_sign_flip_null_variance():
    diffs, families = [1, 1, 0, -1], ["a", "a", "b", "b"]
    discordance, rho = design_from_pilot(diffs, families)
    # totals a: 2, b: -1; within-family products 2 * (1 * 1) + 2 * (0 * -1) = 2 over 0.75 * (2 + 2)
    assert (discordance, rho) == (pytest.approx(0.75), pytest.approx(2 / 3))
    assert planned_se(discordance, [2, 2], rho) == pytest.approx(math.sqrt(2 ** 2 + 1 ** 2) / 4)
    assert design_from_pilot([1, -1, 0], ["a", "a", "b"])[1] == 0.0  # a negative estimate is clipped
    assert math.isnan(design_from_pilot([1, 0, 1], ["a", "b", "c"])[1])  # no family of two problems
    assert math.isnan(design_from_pilot([0, 0], ["a", "a"])[1])  # nothing discordant


# -- verdicts ----------------------------------------------------------------------------------------------

def _pass_runs(root, model, passes_none, passes_spark, families):
    for memory, passes in (("none", passes_none), ("spark", passes_spark)):
        write_run(root / f"{model}__{memory}__s0", [record(pid, model, memory, passed=bool(p), origin=f)
                                                    for pid, (p, f) in enumerate(zip(passes, families))])


def test_an_underpowered_comparison_is_inconclusive_and_the_report_says_it_could_not_detect_it(tmp_path):
    _pass_runs(tmp_path, "m", [1, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0], range(7))
    analysis = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    (row,) = analysis.comparisons.to_dict("records")
    assert (row["metric"], row["n"], row["families"]) == ("pass", 7, 7)
    assert row["mean_diff"] == pytest.approx(1 / 7) and row["verdict"] == "inconclusive"
    _, se, k = cluster_se([0, 1, 0, 0, 0, 0, 0], [str(f) for f in range(7)])
    assert row["mde"] == pytest.approx(mde(se, k)) and row["mde"] > abs(row["mean_diff"])
    assert list(analysis.breakdown.columns).index("mde") == list(analysis.breakdown.columns).index("ci_high") + 1
    assert "verdict" not in analysis.breakdown.columns and analysis.breakdown["mde"].notna().any()
    html = render_html(analysis, [], {}, {})
    assert "<td class='l b'>inconclusive</td>" in html
    assert (f"m/spark vs none (pass): |diff| 0.143 &lt; MDE {row['mde']:.3f}: this design could not have detected "
            "a difference of that size") in html
    assert "mde: the minimum detectable effect" in html and "verdict: better or worse" in html


def test_a_strong_comparison_reads_better_or_worse_by_its_sign(tmp_path):
    families = [i // 2 for i in range(200)]  # 200 problems in 100 families
    low, high = [int(i % 10 < 2) for i in range(200)], [int(i % 10 < 8) for i in range(200)]
    _pass_runs(tmp_path, "up", low, high, families)
    _pass_runs(tmp_path, "down", high, low, families)
    table = analyse(load_runs(str(tmp_path / "*")), OPTIONS).comparisons.set_index("model")
    assert table.columns.get_loc("mde") == table.columns.get_loc("ci_high") + 1
    assert table.columns.get_loc("verdict") == table.columns.get_loc("p_holm") + 1
    for model, sign, word in (("up", 1, "better"), ("down", -1, "worse")):
        row = table.loc[model]
        assert row["families"] == 100 and row["mean_diff"] == pytest.approx(sign * 0.6)
        assert row["p_holm"] < 0.05 and row["verdict"] == word and row["mde"] < 0.6


def test_an_equivalence_claim_reads_equivalent_only_when_its_tost_holds(tmp_path):
    strong = [4.0] * 60
    close = [4.0] * 58 + [5.0, 3.0]  # the small model with the memory matches the large model's baseline
    for model, memory, scores in (("small", "none", [3.0] * 60), ("small", "spark", close),
                                  ("large", "none", strong)):
        write_run(tmp_path / f"{model}__{memory}__s0", [record(pid, model, memory, scores=[s], origin=pid)
                                                        for pid, s in enumerate(scores)])
    table = analyse(load_runs(str(tmp_path / "*")), OPTIONS).comparisons
    tost = table[table["margin"].notna()]
    assert list(tost["baseline"]) == ["large/none"] and list(tost["verdict"]) == ["equivalent"]
    own = table[(table["baseline"] == "none") & (table["metric"] == "quality")]
    assert list(own["verdict"]) == ["better"]
    narrow = analyse(load_runs(str(tmp_path / "*")), ReportConfig(tost_margin=0.01)).comparisons
    assert list(narrow.loc[narrow["margin"].notna(), "verdict"]) == ["inconclusive"]


# -- the dry run -------------------------------------------------------------------------------------------

API = ("model=openai_compatible", "dataset.limit=12")


def _plans(tmp_path, *overrides):
    configs = [compose_config(*API, f"paths.results={tmp_path / 'results'}", *memory, *overrides)
               for memory in ((), ("memory=raw_rag",))]
    return [plan_run(cfg) for cfg in configs], configs[0]


def test_the_dry_run_states_each_comparisons_mde_and_its_assumption(tmp_path):
    plans, cfg = _plans(tmp_path)
    families = Counter(p.origin_family for p in build_benchmark(cfg.dataset).select())
    expected = planned_mde(0.30, list(families.values()), 0.5)
    lines = power_lines(plans)
    assert len(lines) == 2 and "two-sided 0.05, power 80%" in lines[0]
    assert lines[1].startswith(f"  openai-compatible/raw_rag vs none: MDE {100 * expected:.1f} pts on pass@1 from 12 "
                               f"problems in {len(families)} origin families (stated discordance 30%, "
                               "intra-family rho 0.5)")
    assert power_lines(plans[:1]) == []  # a baseline alone makes no comparison
    with pytest.raises(UserError, match="plan.discordance=1.5 is not a share"):
        _plans(tmp_path, "plan.discordance=1.5")


def test_a_pilot_measures_discordance_and_rho_and_changes_the_mde(tmp_path):
    ids = [p.problem_id for p in build_benchmark(compose_config(*API).dataset).select()]
    pilot = tmp_path / "pilot"
    # 12 paired problems in 6 families of 2, 5 discordant: discordance 5/12; only family 3's two problems move
    # together: rho = (2**2 - 2) / (5/12 * 6 * 2) = 0.4
    arm = [1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0]
    for memory, passes in (("none", [0] * 12), ("raw_rag", arm)):
        write_run(pilot / f"openai-compatible__{memory}__s0", [
            record(pid, "openai-compatible", memory, passed=bool(p), origin=i // 2)
            for i, (pid, p) in enumerate(zip(ids, passes))])
    stated = power_lines(_plans(tmp_path)[0])[1]
    measured = power_lines(_plans(tmp_path, f"plan.pilot={pilot}/*")[0])[1]
    discordance, rho = design_from_pilot(arm, [str(i // 2) for i in range(12)])
    assert discordance == pytest.approx(5 / 12) and rho == pytest.approx(0.4)
    assert f"discordance 42% and intra-family rho 0.40 measured on pilot {pilot}/* (12 paired problems)" in measured
    assert measured.split("MDE ")[1].split(" pts")[0] != stated.split("MDE ")[1].split(" pts")[0]
    with pytest.raises(UserError, match="plan.pilot=.* matches no run directory"):
        _plans(tmp_path, f"plan.pilot={tmp_path}/nothing/*")


def test_the_dry_run_of_a_sweep_prints_the_mde_line():
    result = subprocess.run([sys.executable, "-m", "spark_eval", "experiment=demo", "dry_run=true"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "dry run power: the smallest pass@1 difference each comparison detects" in output
    line = next(line for line in output.splitlines() if " vs none: MDE " in line)
    assert "/spark vs none: MDE " in line and "pts on pass@1 from 7 problems" in line
    assert "stated discordance 30%, intra-family rho 0.5" in line
