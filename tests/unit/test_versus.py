"""Runs of several experiments in one report (labelled by experiment), and stage=compare of any two runs."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from spark_eval.config import ReportConfig, compose_config
from spark_eval.stats import ResultsError, analyse, load_runs
from spark_eval.stats.load import load_run
from spark_eval.stats.paired import sign_flip_p
from spark_eval.stats.versus import compare_runs, compare_stage, describe, resolve_run
from tests.fakes.runs import QUALITY_JUDGE, record, synthetic_experiment, write_run

OPTIONS = ReportConfig(bootstrap=300)
N = 21


@pytest.fixture
def two_experiments(tmp_path):
    """`exp1` and `exp2`: model m with and without memory (and the reference) in both, different outcomes."""
    synthetic_experiment(tmp_path / "exp1", ["m"], n=N, seed=1, experiment="exp1")
    synthetic_experiment(tmp_path / "exp2", ["m", "other"], n=N, seed=2, experiment="exp2")
    return tmp_path


def test_runs_of_one_condition_in_two_experiments_are_told_apart_by_experiment(two_experiments):
    runs = load_runs([str(two_experiments / "exp1" / "*"), str(two_experiments / "exp2" / "*")])
    labels = sorted((r.model, r.memory) for r in runs)
    assert labels == [("m@exp1", "none"), ("m@exp1", "spark"), ("m@exp2", "none"), ("m@exp2", "spark"),
                      ("other", "none"), ("other", "spark"), ("reference", "none@exp1"), ("reference", "none@exp2")]
    both = analyse(runs, OPTIONS).comparisons
    own = both[both["baseline"] == "none"].set_index(["model", "metric"])
    assert sorted(own.index) == [(model, metric) for model in ("m@exp1", "m@exp2", "other")
                                 for metric in ("pass", "quality")]
    # each experiment's condition is paired with its own baseline: the same numbers as that experiment alone
    for experiment in ("exp1", "exp2"):
        alone = analyse(load_runs(str(two_experiments / experiment / "*")), OPTIONS).comparisons
        alone = alone[(alone["model"] == "m") & (alone["baseline"] == "none")].set_index("metric")
        for metric in ("pass", "quality"):
            row = own.loc[(f"m@{experiment}", metric)]
            for column in ("n", "baseline_mean", "condition_mean", "mean_diff", "ci_low", "ci_high", "p_value"):
                assert row[column] == pytest.approx(alone.loc[metric, column]), (experiment, metric, column)
    assert set(both["model"]) >= {"m@exp1", "m@exp2"} and "reference" not in set(both["model"])


def test_a_single_glob_and_a_list_of_globs_both_compose(two_experiments):
    globs = f"[{two_experiments}/exp1/*,{two_experiments}/exp2/*]"
    cfg = compose_config("stage=report", f"results={globs}")
    assert len(load_runs(cfg.results)) == 8
    assert len(load_runs(compose_config(f"results={two_experiments}/exp1/*").results)) == 3


def test_runs_of_different_benchmarks_are_still_refused(two_experiments):
    path = two_experiments / "exp2" / "other__none__s0" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "dataset_hash": "another"}))
    with pytest.raises(ResultsError, match="different benchmarks or data copies"):
        load_runs([str(two_experiments / "exp1" / "*"), str(two_experiments / "exp2" / "*")])


def test_compare_gives_the_report_s_paired_comparison(two_experiments):
    none, spark = (load_run(two_experiments / "exp1" / f"m__{memory}__s0") for memory in ("none", "spark"))
    table = compare_runs(none, spark, OPTIONS).set_index("metric")
    report = analyse(load_runs(str(two_experiments / "exp1" / "*")), OPTIONS).comparisons
    report = report[(report["model"] == "m") & (report["baseline"] == "none")].set_index("metric")
    for metric in ("pass", "quality"):
        for column in ("n", "families", "mean_diff", "ci_low", "ci_high", "test", "p_value", "rank_biserial"):
            assert table.loc[metric, column] == pytest.approx(report.loc[metric, column]) if column != "test" \
                else table.loc[metric, column] == report.loc[metric, column]
        assert table.loc[metric, "a_mean"] == pytest.approx(report.loc[metric, "baseline_mean"])
    # by hand: per problem b - a, and the sign-flip test over origin families
    a = pd.Series({r.problem_id: float(r.passed) for r in none.records})
    b = pd.Series({r.problem_id: float(r.passed) for r in spark.records})
    families = [f"{r.library}/{r.origin_family[1]}" for r in none.records]
    assert table.loc["pass", "n"] == N and table.loc["pass", "mean_diff"] == pytest.approx((b - a).mean())
    assert table.loc["pass", "p_value"] == pytest.approx(sign_flip_p((b - a).to_numpy(), families, OPTIONS.seed))
    assert table.loc["quality", "judge"] == QUALITY_JUDGE and table.loc["pass", "judge"] == ""
    lines = describe(none, spark, table.reset_index())
    assert lines[2] == f"common problems: {N} (7 origin families); only in a: 0, only in b: 0"
    assert lines[3].startswith(f"pass@1: a {a.mean():.3f}, b {b.mean():.3f}, b - a {(b - a).mean():+.3f} [95% CI ")
    assert lines[4].startswith(f"quality ({QUALITY_JUDGE}): ")


def test_compare_pairs_only_the_common_problems_and_quality_only_with_one_judge(tmp_path):
    a = write_run(tmp_path / "x" / "m__none__s0", [record(p, "m", "none", passed=p % 2 == 0, scores=[3])
                                                  for p in range(10)])
    b = write_run(tmp_path / "y" / "m__none__s0", [record(p, "m", "none", passed=True) for p in range(4, 14)])
    table = compare_runs(load_run(a), load_run(b), OPTIONS)
    assert list(table["metric"]) == ["pass"]  # b has no quality verdicts
    row = table.iloc[0]
    assert (row["n"], row["only_a"], row["only_b"]) == (6, 4, 4)
    assert row["a_mean"] == pytest.approx(np.mean([p % 2 == 0 for p in range(4, 10)])) and row["b_mean"] == 1.0
    assert describe(load_run(a), load_run(b), table)[-1].startswith("quality: not compared")
    c = write_run(tmp_path / "z" / "m__none__s0", [record(p, "m", "none") for p in range(20, 25)])
    with pytest.raises(ResultsError, match="no problem in common"):
        compare_runs(load_run(a), load_run(c), OPTIONS)
    with pytest.raises(ResultsError, match="two different run directories"):
        compare_runs(load_run(a), load_run(a), OPTIONS)


def test_runs_are_named_by_path_or_under_the_results_folder(two_experiments, tmp_path, monkeypatch):
    run = two_experiments / "exp1" / "m__none__s0"
    assert resolve_run(str(run), tmp_path / "elsewhere") == run
    assert resolve_run("exp1/m__none__s0", two_experiments) == two_experiments / "exp1" / "m__none__s0"
    assert resolve_run("other__spark__s0", two_experiments) == two_experiments / "exp2" / "other__spark__s0"
    monkeypatch.chdir(two_experiments)
    relative = resolve_run("exp2/m__none__s0", tmp_path / "elsewhere")
    assert not relative.is_absolute() and relative.resolve() == two_experiments / "exp2" / "m__none__s0"
    with pytest.raises(ResultsError, match=r"m__none__s0 is the name of 2 runs .*give <experiment>/<run>"):
        resolve_run("m__none__s0", two_experiments)
    with pytest.raises(ResultsError, match=r"runs: exp9/m__none__s0 is not a run directory .*give runs=\["):
        resolve_run("exp9/m__none__s0", two_experiments)


def test_the_compare_stage_logs_the_comparison_and_wants_two_runs(two_experiments, caplog):
    cfg = compose_config("stage=compare", f"paths.results={two_experiments}", "report.bootstrap=300",
                         "runs=[exp1/m__none__s0,exp1/m__spark__s0]")
    with caplog.at_level(logging.INFO, logger="spark_eval.stats.versus"):
        table = compare_stage(cfg)
    logged = [r.getMessage() for r in caplog.records]
    assert logged[0].startswith(f"a: {two_experiments / 'exp1' / 'm__none__s0'} (m/none/s0, experiment exp1)")
    assert len(table) == 2 and any(line.startswith("pass@1: ") for line in logged)
    for runs in ("[]", "[exp1/m__none__s0]", "[exp1/m__none__s0,exp1/m__spark__s0,exp2/m__none__s0]"):
        with pytest.raises(ResultsError, match=r"stage=compare needs exactly two runs, got \d: give runs=\["):
            compare_stage(compose_config("stage=compare", f"paths.results={two_experiments}", f"runs={runs}"))
