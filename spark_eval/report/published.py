"""The paper's published numbers (Tablan et al., 2025, arXiv:2511.08301) and how our model names map to its rows."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One coder of the paper's main table: mean code quality (1-5) without and with Spark."""

    label: str
    without: float
    with_spark: float


PAPER_ROWS = {  # prefix of our model name (lower case, dots as dashes) -> the paper's row
    "qwen3-coder-30b": PaperRow("Qwen3-Coder-30B", 4.23, 4.89),
    "claude-haiku-4-5": PaperRow("Claude Haiku 4.5", 4.50, 4.91),
    "gpt-5-codex": PaperRow("GPT-5-Codex", 4.78, 4.83),
}
PAPER_ORDER = tuple(row.label for row in PAPER_ROWS.values())
HUMAN_REFERENCE = 4.28
"""The quality judge on DS-1000's reference solutions."""
PAPER_BASELINE, PAPER_CONDITION = "none", "spark"
"""The memories that are the paper's NO-SPARK and WITH-SPARK conditions."""
TOP_BAND_SHARE = 0.761
"""Share of recommendations judged EXTREMELY HELPFUL (all coders pooled)."""
AT_LEAST_GOOD_SHARE = 0.982
"""Share judged at least GOOD."""
PAPER_N = 1000
"""The problems behind each of the paper's figures: it ran all 1000 DS-1000 problems for each coder and condition."""


def paper_row(model: str) -> PaperRow | None:
    """The paper's row for our model name (`claude-haiku-4.5` and `claude-haiku-4-5` alike), or None."""
    normal = model.lower().replace(".", "-")
    return next((row for prefix, row in PAPER_ROWS.items() if normal.startswith(prefix)), None)


def published_quality(model: str, memory: str) -> float | None:
    """The paper's mean quality for this model under this memory, or None when the paper has none."""
    row = paper_row(model)
    if row is None or memory not in (PAPER_BASELINE, PAPER_CONDITION):
        return None
    return row.without if memory == PAPER_BASELINE else row.with_spark
