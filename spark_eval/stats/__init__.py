"""Statistics from records and run directories only: a run's summary, pass@k, judge validity and power; a tidy frame,
paired tests, clustered bootstrap intervals.

The analysis (pandas, scipy) loads on first use of its names, so a run, which writes its summary from here, does not
load it."""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"Analysis": "analysis", "analyse": "analysis", "ResultsError": "load", "Run": "load", "load_frame": "load",
         "load_runs": "load", "tidy": "load", "to_parquet": "load"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
