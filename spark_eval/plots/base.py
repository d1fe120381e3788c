"""Shared figure plumbing: Agg-only figures (no pyplot state), PNG + PDF without timestamps, condition colours."""
from __future__ import annotations

import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
BASELINE_COLOUR = "#9a9a9a"
DPI = 120


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A figure drawn by Agg, outside pyplot (nothing global to leak or to close)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, out: Path, name: str) -> list[Path]:
    """`<name>.png` and `<name>.pdf` in `out`; byte-identical when drawn again from the same data."""
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    figure.savefig(png, dpi=DPI)
    figure.savefig(pdf, metadata={"CreationDate": None})
    return [png, pdf]


def colour(memory: str, memories: list[str], baseline: str) -> str:
    """The baseline in grey, other memories in palette order of their sorted names."""
    if memory == baseline:
        return BASELINE_COLOUR
    others = sorted(m for m in memories if m != baseline)
    return PALETTE[others.index(memory) % len(PALETTE)]


def file_name(text: str) -> str:
    """`text` with anything but letters, digits, dots, dashes and underscores made an underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
