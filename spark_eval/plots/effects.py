"""Per-library heatmap of each condition's effect against its baseline."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from spark_eval.plots.base import new_figure
from spark_eval.stats import Analysis

METRIC_LABELS = {"quality": "Quality difference (points)", "pass": "Pass@1 difference"}


def effect_by_library(analysis: Analysis) -> dict[str, Figure]:
    """One panel per metric: rows are model/condition pairs, columns libraries, cells the mean difference."""
    table = analysis.breakdown[analysis.breakdown["by"] == "library"]
    if table.empty:
        return {}
    metrics = [m for m in ("quality", "pass") if m in set(table["metric"])]
    rows = sorted(set(zip(table["model"], table["condition"], table["leaky"])))
    libraries = sorted(table["group"].unique())
    figure = new_figure(1.1 * len(libraries) + 3.5, (0.45 * len(rows) + 1.4) * len(metrics))
    for i, metric in enumerate(metrics):
        ax = figure.add_subplot(len(metrics), 1, i + 1)
        part = table[table["metric"] == metric].set_index(["model", "condition", "group"])["mean_diff"]
        grid = np.array([[part.get((m, c, lib), np.nan) for lib in libraries] for m, c, _ in rows])
        limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() and np.nanmax(np.abs(grid)) > 0 else 1.0
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (r, c), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(c, r, f"{value:+.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(libraries)), libraries, fontsize=8)
        ax.set_yticks(range(len(rows)), [f"{m}: {c} vs {analysis.options.baseline}" + (" (leaky)" if leaky else "")
                                         for m, c, leaky in rows], fontsize=8)
        ax.set_xlabel("Library")
        ax.set_ylabel("Model: condition")
        figure.colorbar(image, ax=ax, label=METRIC_LABELS[metric])
    return {"effect_by_library": figure}
