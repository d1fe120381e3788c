"""Code-quality figures: mean per model and memory (the headline), score distributions, judge vs execution."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from spark_eval.records import GRADED
from spark_eval.plots.base import colour, new_figure
from spark_eval.stats import Analysis
from spark_eval.stats.base import REFERENCE
from spark_eval.stats.units import quality_verdicts

SCORES = (1, 2, 3, 4, 5)
SCORE_COLOURS = ("#c44e52", "#dd8452", "#ccb974", "#64b5cd", "#4c72b0")


def quality_by_model(analysis: Analysis) -> dict[str, Figure]:
    """Mean quality per model, one bar per memory with its 95% CI, and the human-reference line."""
    quality = analysis.conditions[analysis.conditions["metric"] == "quality"]
    coders = quality[quality["model"] != REFERENCE]
    if coders.empty:
        return {}
    models, memories = sorted(coders["model"].unique()), sorted(coders["memory"].unique())
    figure = new_figure(max(6.0, 1.6 * len(models) + 2), 4.2)
    ax = figure.add_subplot()
    width = 0.8 / len(memories)
    for i, memory in enumerate(memories):
        rows = coders[coders["memory"] == memory].set_index("model").reindex(models)
        x = np.arange(len(models)) + (i - (len(memories) - 1) / 2) * width
        leaky = bool(rows["leaky"].fillna(False).any())
        ax.bar(x, rows["mean"] - 1, bottom=1, width=width, color=colour(memory, memories, analysis.options.baseline),
               hatch="//" if leaky else None, label=f"memory={memory}" + (" (leaky)" if leaky else ""),
               yerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]], capsize=3)
    human = quality[quality["model"] == REFERENCE]
    if not human.empty:
        ax.axhline(human["mean"].iloc[0], color="black", linestyle="--", linewidth=1,
                   label=f"human reference ({human['mean'].iloc[0]:.2f})")
    ax.set_xticks(np.arange(len(models)), models)
    ax.set_ylim(1, 5.3)
    ax.set_xlabel("Model")
    ax.set_ylabel("Mean code quality (1-5)")
    ax.set_title(f"Code quality with and without memory (judge: {analysis.judges['quality']})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return {"quality_by_model": figure}


def score_distribution(analysis: Analysis) -> dict[str, Figure]:
    """Share of each 1-5 score per model and memory, stacked."""
    verdicts = quality_verdicts(analysis.frame, analysis.judges["quality"])
    if verdicts.empty:
        return {}
    groups = sorted(verdicts.groupby(["model", "memory"]).groups)
    figure = new_figure(max(6.0, 0.9 * len(groups) + 2), 4.2)
    ax = figure.add_subplot()
    bottom = np.zeros(len(groups))
    for score, tint in zip(SCORES, SCORE_COLOURS):
        shares = np.array([np.mean(verdicts.loc[(verdicts["model"] == m) & (verdicts["memory"] == mem), "score"]
                                   .round() == score) for m, mem in groups])
        ax.bar(range(len(groups)), shares, bottom=bottom, color=tint, label=f"score {score}")
        bottom += shares
    ax.set_xticks(range(len(groups)), [f"{m}\n{mem}" for m, mem in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Model / memory")
    ax.set_ylabel("Share of verdicts")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return {"score_distribution": figure}


def judge_calibration(analysis: Analysis) -> dict[str, Figure]:
    """Execution pass rate of the solutions the judge gave each score: does the judge track the tests?"""
    verdicts = quality_verdicts(analysis.frame, analysis.judges["quality"])
    verdicts = verdicts[verdicts["status"].isin(GRADED)]
    if verdicts.empty:
        return {}
    by_score = verdicts.assign(score=verdicts["score"].round()).groupby("score")["passed"]
    rates, counts = by_score.mean().reindex(SCORES), by_score.size().reindex(SCORES).fillna(0).astype(int)
    figure = new_figure(6.0, 4.0)
    ax = figure.add_subplot()
    ax.bar(SCORES, rates.fillna(0), color=SCORE_COLOURS)
    for score, rate, n in zip(SCORES, rates, counts):
        ax.annotate(f"n={n}", (score, 0 if np.isnan(rate) else rate), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xticks(SCORES)
    ax.set_xlabel("Judge quality score")
    ax.set_ylabel("Execution pass rate")
    ax.set_title(f"Judge vs execution ({analysis.judges['quality']})", fontsize=10)
    return {"judge_calibration": figure}
