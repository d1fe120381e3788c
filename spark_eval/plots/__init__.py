"""Figures from an Analysis (matplotlib, Agg): each saved as PNG and PDF; figures without data are skipped."""
from __future__ import annotations

from pathlib import Path

from spark_eval.plots.base import save
from spark_eval.plots.community import poison_curve
from spark_eval.plots.cost import cost_by_component
from spark_eval.plots.effects import effect_by_library
from spark_eval.plots.helpfulness import helpfulness_bands
from spark_eval.plots.learning import learning_curves
from spark_eval.plots.quality import judge_calibration, quality_by_model, score_distribution
from spark_eval.stats import Analysis

FIGURES = (quality_by_model, score_distribution, helpfulness_bands, effect_by_library, learning_curves,
           judge_calibration, cost_by_component, poison_curve)
"""Each takes an Analysis and returns {name: Figure}, empty when the runs have no data for it."""


def make_figures(analysis: Analysis, out: Path) -> dict[str, list[Path]]:
    """Draw and save every figure that has data; name -> [png, pdf]."""
    out.mkdir(parents=True, exist_ok=True)
    saved = {}
    for make in FIGURES:
        for name, figure in make(analysis).items():
            saved[name] = save(figure, out, name)
    return saved


__all__ = ["FIGURES", "make_figures"]
