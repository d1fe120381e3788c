"""stage=report: run directories in, tables, comparisons, figures and one HTML report out."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from spark_eval.data import DatasetError, build_benchmark
from spark_eval.plots import make_figures
from spark_eval.report.html import render_html
from spark_eval.report.render import Table, write_table
from spark_eval.report.tables import counts_table, helpfulness_table, quality_table, validity_table
from spark_eval.stats import Analysis, ResultsError, Run, analyse, load_runs, to_parquet

log = logging.getLogger(__name__)


def report_stage(cfg: DictConfig) -> list[Path]:
    """`python -m spark_eval stage=report results='<glob>' report.out=<dir>`; the files written."""
    if not cfg.report.out:
        raise ResultsError("stage=report needs report.out=<folder to write the report into>")
    if not cfg.results:
        raise ResultsError("stage=report needs results='<glob of run directories>', e.g. results='results/demo/*'")
    runs = load_runs(cfg.results)
    written = write_report(runs, cfg.report, Path(cfg.report.out), load_prompts(cfg.dataset, runs))
    log.info("report of %d runs written to %s", len(runs), cfg.report.out)
    return written


def write_report(runs: Sequence[Run], options: Any, out: Path, prompts: dict[int, str]) -> list[Path]:
    """Everything stage=report writes: tables, comparisons, the tidy frame, figures and report.html."""
    analysis = analyse(runs, options)
    written, tables = write_tables(analysis, out)
    to_parquet(analysis.frame, out / "records.parquet")
    figures = make_figures(analysis, out)
    written += [path for paths in figures.values() for path in paths]
    html = out / "report.html"
    html.write_text(render_html(analysis, tables, figures, prompts), encoding="utf-8")
    return written + [out / "records.parquet", html]


def write_tables(analysis: Analysis, out: Path) -> tuple[list[Path], list[Table]]:
    """paper_table.*, conditions.* (records per condition), validity_table.* and helpfulness_table.* (with
    verdicts), comparisons.csv (quality rows marked with what the judge's validity allows),
    breakdown.csv and flips.csv, advice.csv (advice checked against the reference's APIs), orders.csv (a condition
    run over several stream orders), transfer.csv, contributors.csv and poison.csv (a community's runs); and the
    tables."""
    out.mkdir(parents=True, exist_ok=True)
    tables = [quality_table(analysis), counts_table(analysis)]
    written = write_table(tables[0], out, "paper_table") + write_table(tables[1], out, "conditions")
    for table, stem in ((validity_table(analysis), "validity_table"), (helpfulness_table(analysis), "helpfulness_table")):
        if table is not None:  # only runs that have the verdicts
            tables.append(table)
            written += write_table(table, out, stem)
    community = {"transfer": analysis.transfer, "contributors": analysis.contributors, "poison": analysis.poison}
    some = {"advice": analysis.advice, "orders": analysis.orders, **community}
    frames = {"comparisons": analysis.comparisons, "breakdown": analysis.breakdown, "flips": analysis.flips,
              **{name: frame for name, frame in some.items() if len(frame)}}  # only runs that have them
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
        written.append(out / f"{name}.csv")
    return written, tables


def load_prompts(dataset_cfg: Any, runs: Sequence[Run]) -> dict[int, str]:
    """Problem prompts for the drill-down, when the configured benchmark is the one every run used."""
    try:
        benchmark = build_benchmark(dataset_cfg)
        used = benchmark.data_hash()
    except DatasetError as e:
        log.warning("the report leaves prompts out: %s", e)
        return {}
    other = next((run for run in runs if run.manifest.dataset_hash != used), None)
    if other is not None:
        name = other.manifest.identity.get("dataset.name", "?")
        log.warning("the report leaves prompts out: %s ran benchmark %s, not the configured %s (dataset.path %s); "
                    "pass benchmark=%s to show them", other.path, name, benchmark.name, dataset_cfg.path, name)
        return {}
    return {p.problem_id: p.prompt for p in benchmark.problems()}
