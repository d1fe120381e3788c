"""The poisoning arm's figure: the honest members' pass rate over the rounds, the poison share of the shared
memory on the second axis, one colour per poison rate."""
from __future__ import annotations

from matplotlib.figure import Figure

from spark_eval.plots.base import PALETTE, new_figure
from spark_eval.stats import Analysis
from spark_eval.stats.community import poison_curves


def poison_curve(analysis: Analysis) -> dict[str, Figure]:
    curves = poison_curves(analysis.runs)
    if not curves:
        return {}
    figure = new_figure(7.5, 3.6)
    ax = figure.subplots()
    share = ax.twinx()
    for i, ((rate, memory), curve) in enumerate(sorted(curves.items())):
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(curve["round"], curve["honest_pass"], color=colour, marker="o", label=f"{memory} (poison rate {rate:g})")
        share.plot(curve["round"], curve["poison_share"], color=colour, linestyle="--")
    ax.set_xlabel("Learning round")
    ax.set_ylabel("Honest members' pass rate (cumulative)")
    share.set_ylabel("Poison share of active insights (dashed)")
    share.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("A shared memory with a bad member", fontsize=10)
    return {"poison_curve": figure}
