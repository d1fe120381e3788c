"""Spending per component (coder, agent, learner, judge) of each run, from the manifests' ledgers."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from spark_eval.plots.base import PALETTE, new_figure
from spark_eval.stats import Analysis

MEASURES = (("cost_usd", "Cost (USD)"), ("tokens", "Tokens (input + output)"))


def cost_by_component(analysis: Analysis) -> dict[str, Figure]:
    """Stacked cost and tokens per run and component; nothing when no run spent anything."""
    ledgers = {run.label: run.manifest.ledger or {} for run in analysis.runs}
    components = sorted({c for ledger in ledgers.values() for c in ledger})
    spent = {(label, c): _spent(ledger.get(c) or {}) for label, ledger in ledgers.items() for c in components}
    if not any(v["cost_usd"] or v["tokens"] for v in spent.values()):
        return {}
    labels = list(ledgers)
    figure = new_figure(max(6.0, 0.9 * len(labels) + 2.5), 6.0)
    axes = figure.subplots(2, 1, sharex=True)
    for ax, (measure, title) in zip(axes, MEASURES):
        bottom = np.zeros(len(labels))
        for i, component in enumerate(components):
            values = np.array([spent[(label, component)][measure] for label in labels])
            ax.bar(range(len(labels)), values, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=component)
            bottom += values
        ax.set_ylabel(title)
    axes[0].legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    axes[1].set_xticks(range(len(labels)), [label.replace("/", "\n") for label in labels], fontsize=7)
    axes[1].set_xlabel("Run (model / memory / seed)")
    return {"cost_by_component": figure}


def _spent(account: dict) -> dict[str, float]:
    return {"cost_usd": float(account.get("cost_usd") or 0.0),
            "tokens": float((account.get("input_tokens") or 0) + (account.get("output_tokens") or 0))}
