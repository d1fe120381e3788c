"""stage=compare: any two runs head to head on the problems both have, with the report's paired statistics.

`runs=[a,b]` names two run directories: a path (absolute, or relative to the current folder), else a folder under
paths.results (`<experiment>/<run>`), else a run folder's own name when exactly one experiment under
paths.results holds it. The difference is b - a per problem: pass@1 always, quality when both runs hold verdicts
of one quality judge (report.quality_judge picks one when they share several). Per-problem values, the clustered
interval and the sign-flip test are those of stage=report (stats.units, stats.compare).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from spark_eval.records.run import RECORDS, holds_records
from spark_eval.stats.bootstrap import LEVEL
from spark_eval.stats.compare import compare
from spark_eval.stats.load import ResultsError, Run, check_one_benchmark, load_run, tidy
from spark_eval.stats.units import choose_judge, paired, pass_units, quality_units, record_table, scored
from spark_eval.stats.validity import SIGNALS, signal_of

log = logging.getLogger(__name__)

COLUMNS = ("metric", "judge", "judge_signal", "n", "families", "only_a", "only_b", "a_mean", "b_mean", "mean_diff", "ci_low",
           "ci_high", "test", "p_value", "rank_biserial")
"""One row per metric; `n` problems both runs have, `only_a`/`only_b` those of one run alone, diff = b - a;
`judge_signal` (quality): what the judge's AUROC against execution on both runs' records allows (validity.SIGNALS)."""
SIDES = ("a", "b")
RUN = "run"
"""The memory label both sides take in the analysis (their model label is their side)."""
USAGE = "runs=[<run a>,<run b>] (paths of run directories, or <experiment>/<run> under paths.results)"


def compare_stage(cfg: Any) -> pd.DataFrame:
    """`python -m spark_eval stage=compare runs=[a,b]`: logs the comparison and returns its rows (COLUMNS)."""
    given = list(cfg.runs or [])
    if len(given) != 2:
        raise ResultsError(f"stage=compare needs exactly two runs, got {len(given)}: give {USAGE}")
    a, b = (load_given(str(g), Path(cfg.paths.results)) for g in given)
    table = compare_runs(a, b, cfg.report)
    for line in describe(a, b, table):
        log.info("%s", line)
    return table


def resolve_run(given: str, results: Path) -> Path:
    """The run directory `given` names (see the module's docstring); ResultsError naming it when there is none."""
    path = Path(given)
    for candidate in (path, results / path):
        if holds_records(candidate):
            return candidate
    found = [] if path.is_absolute() else sorted(p.parent for p in results.glob(f"*/{given}/{RECORDS}"))
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(str(p.relative_to(results)) for p in found)
        raise ResultsError(f"runs: {given} is the name of {len(found)} runs under paths.results={results} ({names}); "
                           "give <experiment>/<run>")
    raise ResultsError(f"runs: {given} is not a run directory (a folder with records.jsonl), neither as a path nor "
                       f"under paths.results={results}; give {USAGE}")


def load_given(given: str, results: Path) -> Run:
    run = load_run(resolve_run(given, results))
    if run is None:
        raise ResultsError(f"runs: {given} holds no records yet; compare it once it has some")
    return run


def compare_runs(a: Run, b: Run, options: Any) -> pd.DataFrame:
    """Per metric, b - a on the problems both runs have (COLUMNS); ResultsError when they share none."""
    check_one_benchmark([a, b], "runs")
    if a.path.resolve() == b.path.resolve():
        raise ResultsError(f"runs: both name {a.path}; give two different run directories")
    sides = [replace(run, model=side, memory=RUN) for side, run in zip(SIDES, (a, b))]
    frame = tidy(sides)
    judge = common_quality_judge(frame, options.quality_judge)
    used = scored(record_table(frame, judge), judge)
    units = {"pass": pass_units(used), **({"quality": quality_units(used)} if judge else {})}
    rows = []
    for metric, table in units.items():
        pairs = paired(table, "b", RUN, "a", RUN)
        if not len(pairs):
            raise ResultsError(f"{a.path} and {b.path} have no problem in common (with a finished record"
                               f"{' and a verdict of ' + judge if judge else ''}); nothing to compare")
        found = compare(pairs, options)
        problems = {side: set(table.loc[table["model"] == side, "problem_id"]) for side in SIDES}
        rows.append({**found, "metric": metric, "judge": judge if metric == "quality" else "",
                     "judge_signal": signal_of(used)["signal"] if metric == "quality" else "",
                     "a_mean": found["baseline_mean"], "b_mean": found["condition_mean"],
                     "only_a": len(problems["a"] - problems["b"]), "only_b": len(problems["b"] - problems["a"])})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def common_quality_judge(frame: pd.DataFrame, wanted: str) -> str | None:
    """The quality judge both sides have verdicts of: `wanted`, else the only one; None when they share none."""
    verdicts = frame[(frame["kind"] == "quality") & frame["score"].notna()]
    judges = [set(verdicts.loc[verdicts["model"] == side, "judge"]) for side in SIDES]
    return choose_judge(frame, "quality", wanted, among=judges[0] & judges[1])


def describe(a: Run, b: Run, table: pd.DataFrame) -> list[str]:
    """The comparison as lines to log."""
    pass_row = table.iloc[0]
    lines = [f"{side}: {run.path} ({run.model}/{run.memory}/s{run.seed}, experiment {run.experiment})"
             for side, run in zip(SIDES, (a, b))]
    lines.append(f"common problems: {pass_row['n']} ({pass_row['families']} origin families); "
                 f"only in a: {pass_row['only_a']}, only in b: {pass_row['only_b']}")
    for row in table.itertuples():
        name = "pass@1" if row.metric == "pass" else f"quality ({row.judge})"
        lines.append(f"{name}: a {row.a_mean:.3f}, b {row.b_mean:.3f}, b - a {row.mean_diff:+.3f} "
                     f"[{LEVEL:.0%} CI {row.ci_low:+.3f}, {row.ci_high:+.3f}], p = {row.p_value:.3g} ({row.test})"
                     + (f"; the judge against execution on these records: {row.judge_signal}, so this quality "
                        "difference is not a finding" if row.metric == "quality" and row.judge_signal != SIGNALS[0]
                        else ""))
    if "quality" not in set(table["metric"]):
        lines.append("quality: not compared (no quality judge has verdicts in both runs)")
    return lines
