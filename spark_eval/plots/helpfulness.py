"""Helpfulness figure: the share of recommendations in each band, per model and memory."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from spark_eval.records import BANDS
from spark_eval.plots.base import new_figure
from spark_eval.stats import Analysis

BAND_COLOURS = ("#2f6f4f", "#64b5cd", "#ccb974", "#dd8452", "#c44e52")


def helpfulness_bands(analysis: Analysis) -> dict[str, Figure]:
    """Stacked band shares with the 95% CI of the top band as an error bar."""
    bands = analysis.bands[analysis.bands["band"].isin(BANDS)]
    if bands.empty:
        return {}
    groups = sorted(set(zip(bands["model"], bands["memory"])))
    table = bands.set_index(["model", "memory", "band"])
    figure = new_figure(max(6.0, 0.9 * len(groups) + 2.5), 4.2)
    ax = figure.add_subplot()
    bottom = np.zeros(len(groups))
    for band, tint in zip(BANDS, BAND_COLOURS):
        shares = np.array([table.loc[(m, mem, band), "mean"] for m, mem in groups])
        ax.bar(range(len(groups)), shares, bottom=bottom, color=tint, label=band)
        bottom += shares
    top = [table.loc[(m, mem, BANDS[0])] for m, mem in groups]
    ax.errorbar(range(len(groups)), [t["mean"] for t in top], fmt="none", ecolor="black", capsize=3,
                yerr=[[t["mean"] - t["ci_low"] for t in top], [t["ci_high"] - t["mean"] for t in top]])
    ax.set_xticks(range(len(groups)), [f"{m}\n{mem}" + ("\n(leaky)" if table.loc[(m, mem, BANDS[0]), "leaky"] else "")
                                       for m, mem in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Model / memory")
    ax.set_ylabel("Share of recommendations")
    ax.set_title(f"Recommendation helpfulness (judge: {analysis.judges['helpfulness']})", fontsize=10)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return {"helpfulness_bands": figure}
