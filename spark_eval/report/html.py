"""The HTML report: one self-contained file (figures as data URIs, the problem browser as inline JSON and script;
nothing loaded from the network), every text escaped."""
from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from spark_eval.records.run import Manifest
from spark_eval.stats.power import ALPHA, POWER
from spark_eval.report.browser import browser_section
from spark_eval.report.browser_script import STYLE as BROWSER_STYLE
from spark_eval.report.render import Table
from spark_eval.stats import Analysis
from spark_eval.stats.flips import ALL, PASSED
from spark_eval.stats.paired import EXACT_FAMILIES, FLIPS
from spark_eval.stats.validity import SIGNALS

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em;display:block;overflow-x:auto}th,td{border:1px solid #ccc;padding:.2em .5em}
th{background:#f2f2f2}td.r{text-align:right}pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.85em}
figure{display:inline-block;margin:.5em}img{max-width:100%}details{margin:.2em 0}summary{cursor:pointer}
.passed{color:#1a7f37}.failed,.timeout,.infra_error{color:#c62828}.note{font-size:.85em;color:#555}
.run{border-left:3px solid #ddd;padding-left:.8em;margin:.6em 0}
td.b{font-weight:bold}
"""
TRANSFER_NOTE = (
    "Leave-one-contributor-out: each beneficiary's problems against the frozen shared memory whole (with) and with "
    "the contributor's insights masked (without: an insight is masked when every source came from that "
    "contributor); mean_diff = with - without, paired per problem, CI and sign-flip test over origin families as "
    "above. Below, per contributor: insights it had a part in (active, retired, written by the poisoning arm), "
    "their helpful/harmful counters, and how often records were shown and cited them (by another model's records "
    "apart).")
POISON_NOTE = (
    "Per shared store: the poisoning arm's member (poisoner) replaced that share of its learned insights by "
    "plausible but wrong ones (memory/learning/poison.py). poison: insights with a poisoned source, active and "
    "retired; rounds_to_retire: rounds from a poison insight's ADD to its RETIRE (median, min, max); "
    "uses_to_retire: records charged to it before it was retired (the same spread); honest_retired: honest "
    "insights retired (false alarms, of honest_insights); shown/cited: records given "
    "poison (cited by honest members apart); honest_pass: the honest members' pass rate. Paired differences "
    "against rate 0 are in comparisons.csv with report.baseline set to the rate-0 memory.")
COMPARISON_FORMATS = {"with_mean": "{:.3f}", "without_mean": "{:.3f}", "baseline_mean": "{:.3f}",
                      "condition_mean": "{:.3f}", "mean_diff": "{:+.3f}", "ci_low": "{:.3f}", "ci_high": "{:.3f}",
                      "p_value": "{:.4g}", "p_holm": "{:.4g}", "rank_biserial": "{:+.3f}", "margin": "{:g}",
                      "mde": "{:.3f}"}
COMPARISON_NOTE = (
    "Each condition against its baseline on the same problems: a problem's records (epochs, repeats, seeds) are "
    "averaged first, so n counts problems, and quality and pass@1 use the same records (see the records table). "
    f"p_value: paired sign-flip permutation test over origin families (each family's per-problem differences "
    f"summed, whole families flipped; exact up to {EXACT_FAMILIES} families with a non-zero total, else {FLIPS} "
    f"seeded random flips; a mid-p: patterns further out count whole, patterns as extreme as the observed one "
    f"count half, because 0/1 outcomes make ties common and the plain p was far too conservative); TOST rows: two one-sided t tests with the cluster-robust "
    "standard error over origin families (families - 1 degrees of freedom). 95% CI: bootstrap over origin "
    "families, percentiles expanded for few families (about a t interval with families - 1 degrees of freedom). rank_biserial: effect size of the per-problem differences (descriptive). p_holm: Holm-adjusted "
    f"across every row above. mde: the minimum detectable effect, the smallest true difference (in mean_diff's "
    f"unit) that a two-sided test at {ALPHA:g} detects with {POWER:.0%} power given the row's cluster-robust "
    "standard error over its K origin families, (t(K-1, 1 - alpha/2) + t(K-1, power)) x se with t quantiles of K - 1 "
    "degrees of freedom; '-' below two families. "
    f"verdict: better or worse (the sign of mean_diff) when p_holm < {ALPHA:g}, equivalent for a TOST row when "
    f"p_holm < {ALPHA:g}, otherwise inconclusive, which is not evidence that the arms are alike: where |mean_diff| "
    "is below the mde, the design could not have detected a difference of that size (listed under the table). "
    "judge_signal (quality rows): what the quality judge's AUROC against execution on the records of both arms "
    "allows (see the judge validity table); a quality difference whose judge shows no signal is not a finding. "
    "Breakdown rows: differences with their clustered CI and mde, no tests and so no verdict.")


def render_html(analysis: Analysis, tables: Sequence[Table], figures: dict[str, list[Path]],
                prompts: dict[int, str]) -> str:
    """The whole report as one HTML string (deterministic for the same inputs)."""
    experiments = ", ".join(sorted({run.experiment for run in analysis.runs}))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>spark_eval report: "
             f"{escape(experiments)}</title><style>{STYLE}{BROWSER_STYLE}</style></head><body>",
             f"<h1>spark_eval report: {escape(experiments)}</h1>", _runs(analysis)]
    parts += [_table(table) for table in tables]
    parts += ["<h2>Paired comparisons</h2>", _frame(analysis.comparisons, COMPARISON_FORMATS, bold=("verdict",)),
              _below_mde(analysis.comparisons), _without_signal(analysis.comparisons),
              f"<p class='note'>{escape(COMPARISON_NOTE)}</p>",
              "<details><summary>Breakdown per library and perturbation type</summary>",
              _frame(analysis.breakdown, COMPARISON_FORMATS), "</details>"]
    parts += _checks(analysis)
    if len(analysis.transfer) or len(analysis.contributors):
        parts += ["<h2>Community: who helped whom</h2>", _frame(analysis.transfer, COMPARISON_FORMATS),
                  f"<p class='note'>{escape(TRANSFER_NOTE)}</p>", _frame(analysis.contributors, {})]
    if len(analysis.poison):
        parts += ["<h2>Community: a bad member</h2>", _frame(analysis.poison, {"honest_pass": "{:.3f}"}),
                  f"<p class='note'>{escape(POISON_NOTE)}</p>"]
    parts += ["<h2>Figures</h2>"]
    parts += [_figure(name, paths[0]) for name, paths in figures.items()]
    parts += ["<h2>Problems</h2>", browser_section(analysis, prompts), "</body></html>"]
    return "\n".join(parts) + "\n"


def _runs(analysis: Analysis) -> str:
    rows = [(run.path.name, run.experiment, run.model, run.memory, str(run.seed), str(len(run.records)),
             str(sum(1 for r in run.records if r.error)), str(sum(1 for r in run.records if r.passed)),
             str(run.manifest.status or "-"), "yes" if run.leaky else "", _isolation(run.manifest))
            for run in analysis.runs]
    head = ("Run", "Experiment", "Model", "Memory", "Seed", "Records", "Errors", "Passed", "Status", "Leaky",
            "Isolation")
    unsandboxed = [run.path.name for run in analysis.runs if _isolation(run.manifest).endswith(NOT_BWRAP)]
    note = f"<p class='note'>{escape(ISOLATION_NOTE.format(', '.join(unsandboxed)))}</p>" if unsandboxed else ""
    return "<h2>Runs</h2>" + _html_table(head, rows, "lllllrrrlll") + note


NOT_BWRAP = "(not bwrap)"
ISOLATION_NOTE = ("Graded without bubblewrap: {}. Their programs could reach what each manifest's execution.exposes "
                  "lists: the network, and files open to other users (as the harness's own user: all of its files).")


def _isolation(manifest: Manifest) -> str:
    """How a run's programs were isolated (the manifest's `execution`): bwrap, or process and whose uid, marked
    as not bwrap; '-' when the manifest does not say."""
    execution = manifest.execution
    isolation = execution.get("isolation") if isinstance(execution, dict) else None
    if not isinstance(isolation, str):
        return "-"
    if isolation == "bwrap":
        return isolation
    uids = execution.get("uids")
    uid = uids[0] if isinstance(uids, list) and uids else None
    who = f"uid {uid}" if uid is not None else "own uid" if execution.get("own_uid") else "the harness's user"
    return f"{isolation} as {who} {NOT_BWRAP}"


def _table(table: Table) -> str:
    notes = "".join(f"<p class='note'>{escape(note)}</p>" for note in table.notes)
    return f"<h2>{escape(table.title)}</h2>" + _html_table(table.columns, table.cells, table.align) + notes


def _below_mde(comparisons: pd.DataFrame) -> str:
    """One line per comparison whose |mean_diff| is below its MDE: its design could not have detected it."""
    below = comparisons[comparisons["mean_diff"].abs() < comparisons["mde"]]
    lines = [f"{row.model}/{row.condition} vs {row.baseline} ({row.metric}): |diff| {abs(row.mean_diff):.3f} < MDE "
             f"{row.mde:.3f}: this design could not have detected a difference of that size"
             for row in below.itertuples()]
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<ul class='note'>{items}</ul>" if items else ""


def _without_signal(comparisons: pd.DataFrame) -> str:
    """One line per quality comparison whose judge shows no signal on its records: not a finding."""
    found = comparisons[comparisons["judge_signal"].isin([s for s in SIGNALS if s != SIGNALS[0]])]
    lines = [f"{row.model}/{row.condition} vs {row.baseline} (quality): the judge's AUROC against execution on "
             f"these records says '{row.judge_signal}': its quality difference is not a finding"
             for row in found.itertuples()]
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<ul class='note'>{items}</ul>" if items else ""


def _frame(frame: pd.DataFrame, formats: dict[str, str], bold: Sequence[str] = ()) -> str:
    """The frame as a table, every column shown; the columns in `bold` in bold (the comparisons' verdict)."""
    rows = [tuple(_format(value, formats.get(column)) for column, value in row.items())
            for row in frame.to_dict("records")]
    align = [("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l") + (" b" if c in bold else "")
             for c in frame.columns]
    return _html_table(tuple(frame.columns), rows, align)


def _format(value: Any, spec: str | None) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return spec.format(value) if spec and isinstance(value, (int, float)) else str(value)


def _html_table(head: Iterable[str], rows: Iterable[Iterable[str]], align: Sequence[str]) -> str:
    header = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td class='{a}'>{escape(str(c))}</td>" for c, a in zip(row, align)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{escape(name)}'>"
            f"<figcaption>{escape(name)}</figcaption></figure>")


FLIP_TABLE_NOTE = (
    "destroyed: known answers lost once the condition's context was added, i.e. problems the baseline passed "
    "(known) that the condition failed; rescued: problems the baseline failed (unknown) that the condition passed. "
    f"A problem's side counts as passed when its pass@1 (the mean over its records: epochs, samples, seeds) is at "
    f"least {PASSED:g}. Rates: destroyed / known and rescued / unknown; 95% CI: bootstrap over the origin families "
    "that hold a problem of the denominator (whole families resampled, ratio of sums); '-' when the denominator is "
    "0. flips.csv holds these rows (library 'all') and one row per library, which sum to them. The problem browser "
    "below lists a condition's flipped problems (filter: Flip).")
ADVICE_TABLE_NOTE = (
    "Advice checked against ground truth, no judge needed: a record's labels are the documented APIs its problem's "
    "reference solution uses, its hits those of them the advice's text names. advised: records shown advice; "
    "labelled: those checked against at least one label; named_share: the share of them whose advice names at "
    "least one labelled API (named), 95% CI by bootstrap over origin families. hit_pass / miss_pass: pass rate of "
    "the labelled records the metrics use (no error; with a quality judge, its verdict) whose advice named one / "
    "none, with their counts hit_n / miss_n: descriptive, not a causal effect. Conditions none of whose records "
    "was checked are left out.")
ORDER_TABLE_NOTE = (
    "Stream order as a random factor: a condition run over several seeded stream orders (seed swept with "
    "pipeline.shuffle=true on the same problems). Each seed's effect: the mean over problems of its pass@1 minus "
    "the baseline's, against the baseline's run of the same seed when there is one (matched: how many seeds were), "
    "else the baseline pooled over its seeds. mean, sd (n - 1 denominator), min and max over the seeds; n: the "
    "fewest problems a seed's effect pairs; effects: seed:effect.")
CHECK_FORMATS = {"destroyed_rate": "{:.3f}", "destroyed_ci_low": "{:.3f}", "destroyed_ci_high": "{:.3f}",
                 "rescued_rate": "{:.3f}", "rescued_ci_low": "{:.3f}", "rescued_ci_high": "{:.3f}",
                 "named_share": "{:.3f}", "named_ci_low": "{:.3f}", "named_ci_high": "{:.3f}", "hit_pass": "{:.3f}",
                 "miss_pass": "{:.3f}", "mean_effect": "{:+.3f}", "sd_effect": "{:.3f}", "min_effect": "{:+.3f}",
                 "max_effect": "{:+.3f}"}


def _checks(analysis: Analysis) -> list[str]:
    """Flips against the baseline, advice checked against the reference's APIs, the spread over stream orders:
    each section only when it has rows."""
    parts = []
    if len(analysis.flips):
        whole, rest = analysis.flips["library"] == ALL, [c for c in analysis.flips.columns if c != "library"]
        by_library = analysis.flips.loc[~whole, [*rest[:3], "library", *rest[3:]]]
        parts += ["<h2>Flips</h2>", _frame(analysis.flips.loc[whole, rest], CHECK_FORMATS),
                  f"<p class='note'>{escape(FLIP_TABLE_NOTE)}</p>",
                  "<details><summary>Flips per library</summary>", _frame(by_library, CHECK_FORMATS), "</details>"]
    if len(analysis.advice):
        parts += ["<h2>Advice checked against the reference's APIs</h2>", _frame(analysis.advice, CHECK_FORMATS),
                  f"<p class='note'>{escape(ADVICE_TABLE_NOTE)}</p>"]
    if len(analysis.orders):
        parts += ["<h2>Stream order</h2>", _frame(analysis.orders, CHECK_FORMATS),
                  f"<p class='note'>{escape(ORDER_TABLE_NOTE)}</p>"]
    return parts
