"""Learning curves: rolling quality and pass rate over the stream, per epoch, with the memory's size beside."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from spark_eval.plots.base import PALETTE, file_name, new_figure
from spark_eval.stats import Analysis, Run
from spark_eval.stats.base import REFERENCE
from spark_eval.stats.units import quality_verdicts


def learning_curves(analysis: Analysis) -> dict[str, Figure]:
    """One figure per run of a memory other than the baseline (the reference solutions left out)."""
    figures = {}
    for run in analysis.runs:
        if run.memory == analysis.options.baseline or run.model == REFERENCE or len(run.records) < 2:
            continue
        stream = _stream(analysis, run)
        figures[file_name(f"learning_curve_{run.model}__{run.memory}__s{run.seed}")] = _figure(
            run, stream, analysis.options.window)
    return figures


def _stream(analysis: Analysis, run: Run) -> pd.DataFrame:
    """The run's records in stream order (epoch, then order written) with `passed` and mean `quality`."""
    rows = analysis.frame[analysis.frame["run_dir"] == str(run.path)]
    records = rows.drop_duplicates("key").sort_values(["epoch", "order"])[["key", "epoch", "passed"]]
    verdicts = quality_verdicts(rows, analysis.judges["quality"])
    quality = verdicts.groupby("key")["score"].mean().rename("quality")
    stream = records.merge(quality, how="left", left_on="key", right_index=True)
    return stream.assign(seen=np.arange(1, len(stream) + 1), passed=stream["passed"].astype(float))


def _figure(run: Run, stream: pd.DataFrame, window: int) -> Figure:
    panels = [("passed", "Rolling pass rate")]
    if stream["quality"].notna().any():
        panels.insert(0, ("quality", "Rolling quality (1-5)"))
    figure = new_figure(7.5, 2.6 * len(panels) + 0.6)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (column, label) in zip(axes, panels):
        for i, (epoch, part) in enumerate(stream.groupby("epoch", sort=True)):
            rolling = part[column].rolling(min(window, len(part)), min_periods=1).mean()
            ax.plot(part["seen"], rolling, color=PALETTE[i % len(PALETTE)], label=f"epoch {epoch}")
            if i:
                ax.axvline(part["seen"].iloc[0] - 0.5, color="black", linewidth=0.5, linestyle=":")
        ax.set_ylabel(label)
    axes[-1].set_xlabel("Problems seen")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_title(f"{run.label}{' (leaky)' if run.leaky else ''}: rolling mean over {window} problems",
                      fontsize=10)
    if run.health:
        size = axes[-1].twinx()
        # each health row counts the records learned from in its round; a row before the stream (epoch -1: the
        # paper's synthetic experience, written from every problem) holds from the first problem on
        seen = np.cumsum([h.get("records_seen", 0) if h.get("epoch", 0) >= 0 else 0 for h in run.health])
        size_after = [h.get("insights", h.get("items")) for h in run.health]
        # the last size holds to the end of the stream
        size.step([*seen, max(seen[-1], stream["seen"].iloc[-1])], [*size_after, size_after[-1]], where="post",
                  color="#8c8c8c", linestyle="--", label="insights")
        size.set_ylabel("Insights in memory")
    return figure
