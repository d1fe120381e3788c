"""Figures from a small synthetic experiment: drawn without error, labelled, skipped without data, reproducible."""
from __future__ import annotations

import pytest

from spark_eval.config import ReportConfig
from spark_eval.plots import make_figures
from spark_eval.plots.cost import cost_by_component
from spark_eval.plots.effects import effect_by_library
from spark_eval.plots.helpfulness import helpfulness_bands
from spark_eval.plots.learning import learning_curves
from spark_eval.plots.quality import judge_calibration, quality_by_model, score_distribution
from spark_eval.stats import analyse, load_runs
from tests.fakes.runs import record, synthetic_experiment, write_run

OPTIONS = ReportConfig(bootstrap=200, window=10)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    synthetic_experiment(root, ["small-model", "large-model"], n=42, epochs=2)
    return analyse(load_runs(str(root / "*")), OPTIONS)


def _labels(figure):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in figure.axes]


@pytest.mark.parametrize("make, name, labels", [
    (quality_by_model, "quality_by_model", [("Model", "Mean code quality (1-5)")]),
    (score_distribution, "score_distribution", [("Model / memory", "Share of verdicts")]),
    (helpfulness_bands, "helpfulness_bands", [("Model / memory", "Share of recommendations")]),
    (judge_calibration, "judge_calibration", [("Judge quality score", "Execution pass rate")]),
    (cost_by_component, "cost_by_component", [("", "Cost (USD)"), ("Run (model / memory / seed)",
                                                                   "Tokens (input + output)")]),
])
def test_figures_have_their_axis_labels(analysis, make, name, labels):
    figures = make(analysis)
    assert list(figures) == [name]
    assert _labels(figures[name]) == labels


def test_library_heatmap_has_a_panel_per_metric_and_a_colour_bar_each(analysis):
    figure = effect_by_library(analysis)["effect_by_library"]
    panels = [ax for ax in figure.axes if ax.get_xlabel() == "Library"]
    assert [ax.get_ylabel() for ax in panels] == ["Model: condition", "Model: condition"]
    assert {ax.get_ylabel() for ax in figure.axes} >= {"Quality difference (points)", "Pass@1 difference"}
    assert [t.get_text() for t in panels[0].get_xticklabels()] == sorted(
        ["Pandas", "Numpy", "Matplotlib", "Sklearn", "Scipy", "Pytorch", "Tensorflow"])


def test_learning_curves_per_memory_run_with_memory_size_on_a_second_axis(analysis):
    figures = learning_curves(analysis)
    assert sorted(figures) == ["learning_curve_large-model__spark__s0", "learning_curve_small-model__spark__s0"]
    labels = _labels(figures["learning_curve_small-model__spark__s0"])
    assert labels == [("", "Rolling quality (1-5)"), ("Problems seen", "Rolling pass rate"),
                      ("", "Insights in memory")]
    quality_axis = figures["learning_curve_small-model__spark__s0"].axes[0]
    curves = [line.get_label() for line in quality_axis.get_lines() if not line.get_label().startswith("_")]
    assert curves == ["epoch 0", "epoch 1"]


def test_synthetic_experience_counts_from_the_first_problem(tmp_path):
    health = [{"epoch": -1, "round": -1, "records_seen": 20, "insights": 7}]
    write_run(tmp_path / "m__spark_paper__s0", [record(p, "m", "spark_paper") for p in range(20)], health=health)
    figure = learning_curves(analyse(load_runs(str(tmp_path / "*")), OPTIONS))["learning_curve_m__spark_paper__s0"]
    (step,) = figure.axes[-1].get_lines()
    assert list(step.get_xdata()) == [0, 20] and list(step.get_ydata()) == [7, 7]


def test_figures_without_data_are_skipped(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(p, "m", "none") for p in range(3)])
    bare = analyse(load_runs(str(tmp_path / "*")), OPTIONS)
    assert make_figures(bare, tmp_path / "out") == {}


def test_every_figure_is_saved_as_png_and_pdf_identically_twice(analysis, tmp_path):
    first = make_figures(analysis, tmp_path / "a")
    second = make_figures(analysis, tmp_path / "b")
    assert len(first) == 8 and all([p.suffix for p in paths] == [".png", ".pdf"] for paths in first.values())
    for name, paths in first.items():
        for path, again in zip(paths, second[name]):
            assert path.read_bytes() == again.read_bytes(), path.name
