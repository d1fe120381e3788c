"""Regenerate paper_figures/ from the paper experiments' runs: the paper tables, comparisons and figures.

    python scripts/make_paper_figures.py

For each of results/paper_main, results/paper_ablations and results/online_learning that holds runs, writes
paper_figures/<experiment>/ with the same code and the same `report` defaults as stage=report (no HTML
report and no tidy frame: those carry code, prompts and local paths; stage=report makes them).
"""
from __future__ import annotations

import logging

from spark_eval.config import PROJECT_ROOT, compose_config
from spark_eval.plots import make_figures
from spark_eval.report import write_tables
from spark_eval.stats import ResultsError, analyse, load_runs

EXPERIMENTS = ("paper_main", "paper_ablations", "online_learning")
OUT = PROJECT_ROOT / "paper_figures"

log = logging.getLogger("make_paper_figures")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = compose_config("stage=report").report
    for experiment in EXPERIMENTS:
        try:
            runs = load_runs(str(PROJECT_ROOT / "results" / experiment / "*"))
        except ResultsError as e:
            log.info("%s: skipped (%s)", experiment, e)
            continue
        analysis = analyse(runs, options)
        written, _ = write_tables(analysis, OUT / experiment)
        figures = make_figures(analysis, OUT / experiment)
        log.info("%s: %d runs -> %d table files and %d figures in %s", experiment, len(runs), len(written),
                 len(figures), (OUT / experiment).relative_to(PROJECT_ROOT))


if __name__ == "__main__":
    main()
