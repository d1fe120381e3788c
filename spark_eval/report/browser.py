"""The report's problem browser: every record once, as compact JSON, drawn in the page by its inline script.

The list of problems filters by library, perturbation, condition, execution status, helpfulness band, quality
range, text, and flips (a condition's problems that went pass->fail or fail->pass against its baseline); a problem
opens to every condition side by side (see browser_script.py). Record text reaches the page only as JSON inside a
`<script type="application/json">` element, escaped so that no text can close that element, and the script puts it
into the page with `textContent`, never as HTML.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from spark_eval.records import BANDS, EXEC_STATUSES, NO_STATUS, Recommendation, Record
from spark_eval.report.browser_script import SCRIPT
from spark_eval.stats import Analysis, Run
from spark_eval.stats.compare import own_baseline_pairs
from spark_eval.stats.flips import flipped_problems

RECORD_FIELDS = ("problem", "condition", "epoch", "repeat", "status", "quality", "band", "code", "exec", "advice",
                 "verdicts", "error", "coder", "apis")
"""The values of one record in `records`, by position (the script reads the positions from `fields`):
`problem` and `condition` index `problems` and `conditions`; `quality` is the mean of the reported quality judge's
scores (null without one) and `band` the reported helpfulness judge's band; `exec` is null or
[error_type, duration_s, output tail]; `advice` null or [text, leak_flag, error, plan, items], an item being
[id, kind, cited, leak, poison, contributors] with id, kind and contributors as indexes into `strings`;
`verdicts` holds [judge (into `strings`), kind, repeat, score, band, rationale or parse error];
`coder` null or [input_tokens, output_tokens, latency_s, cached]; `apis` null (no labels) or [labels, hits]: the
documented APIs the problem's reference uses and those the advice names (null when not checked), as indexes into
`strings`. Flags are 0/1."""
FLIP_FIELDS = ("label", "baseline", "condition_runs", "baseline_runs", "destroyed", "rescued")
"""One entry of `flips` per model x condition against its baseline (stats.flips): `model/condition`, the baseline's
memory, the indexes (into `conditions`) of the condition's runs and of the baseline's, and the problems (indexes
into `problems`) it lost (pass->fail) and gained (fail->pass), by the per-problem pass@1 of stats.flips."""
NOSCRIPT = ("The problem browser needs JavaScript. Every record is also in records.parquet next to this file and "
            "in the runs' records.jsonl.")


def browser_section(analysis: Analysis, prompts: dict[int, str]) -> str:
    """The browser's placeholder, its data and its script (deterministic for the same inputs)."""
    data = json.dumps(browser_data(analysis, prompts), separators=(",", ":"), allow_nan=False)
    # JSON has < > & only inside strings, where \u escapes mean the same and no "</script" can appear
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f"<div id='browser'><noscript><p>{NOSCRIPT}</p></noscript></div>\n"
            f"<script type='application/json' id='browser-data'>{data}</script>\n<script>{SCRIPT}</script>")


def browser_data(analysis: Analysis, prompts: dict[int, str]) -> dict[str, Any]:
    """What the browser shows: problems sorted by id, records by problem, condition (run), epoch and repeat."""
    strings = _Interned()
    entries = sorted(((record.problem_id, condition, record.epoch, record.repeat), record)
                     for condition, run in enumerate(analysis.runs) for record in run.records)  # keys are unique
    first: dict[int, Record] = {}
    for (pid, *_), record in entries:
        first.setdefault(pid, record)
    index = {pid: i for i, pid in enumerate(first)}
    statuses = {record.status for _, record in entries}
    problems = [[pid, r.library, r.perturbation_type, prompts.get(pid)] for pid, r in first.items()]
    rows = [_record(index[key[0]], key[1], record, analysis.judges, strings) for key, record in entries]
    bands = {row[RECORD_FIELDS.index("band")] for row in rows}
    values = {"library": sorted({p[1] for p in problems}), "perturbation": sorted({p[2] for p in problems}),
              "status": [s for s in (*EXEC_STATUSES, NO_STATUS) if s in statuses],
              "band": [b for b in BANDS if b in bands]}
    return {"fields": RECORD_FIELDS, "conditions": condition_labels(analysis.runs), "values": values,
            "problems": problems, "strings": strings.values, "records": rows,
            "flip_fields": FLIP_FIELDS, "flips": flip_entries(analysis, index)}


def flip_entries(analysis: Analysis, index: dict[int, int]) -> list[list[Any]]:
    """FLIP_FIELDS per model x condition against its baseline (the pairs of flips.csv)."""
    entries = []
    units = {"pass": analysis.units["pass"]} if "pass" in analysis.units else {}
    for _, model, condition, pairs in own_baseline_pairs(units, analysis.options.baseline):
        if not len(pairs):
            continue
        runs = [[i for i, run in enumerate(analysis.runs) if (run.model, run.memory) == (model, memory)]
                for memory in (condition, analysis.options.baseline)]
        destroyed, rescued = flipped_problems(pairs)
        entries.append([f"{model}/{condition}", analysis.options.baseline, *runs,
                        [index[pid] for pid in destroyed], [index[pid] for pid in rescued]])
    return entries


def condition_labels(runs: Sequence[Run]) -> list[str]:
    """One name per run: model/memory/seed, with the experiment when two runs share that, else numbered."""
    labels = [run.label for run in runs]
    labels = [f"{run.experiment}/{label}" if labels.count(label) > 1 else label for run, label in zip(runs, labels)]
    return [f"{label} #{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _record(problem: int, condition: int, record: Record, judges: dict[str, str | None],
            strings: _Interned) -> list[Any]:
    result, completion = record.exec, record.completion
    quality = [j.score for j in record.judgments
               if j.kind == "quality" and j.judge == judges.get("quality") and _number(j.score) is not None]
    band = next((j.band for j in record.judgments
                 if j.kind == "helpfulness" and j.judge == judges.get("helpfulness") and j.band), None)
    verdicts = [[strings.add(j.judge), j.kind, j.repeat, _number(j.score), j.band, j.rationale or j.parse_error or ""]
                for j in record.judgments]
    return [problem, condition, record.epoch, record.repeat, record.status,
            round(sum(quality) / len(quality), 3) if quality else None, band, record.code,
            None if result is None else [result.error_type, _number(result.duration_s), result.stderr_tail],
            None if record.recommendation is None else _advice(record.recommendation, strings),
            verdicts, record.error,
            None if completion is None else [completion.input_tokens, completion.output_tokens,
                                             _number(completion.latency_s), int(completion.cached)],
            _apis(record.recommendation, strings)]


def _advice(recommendation: Recommendation, strings: _Interned) -> list[Any]:
    """The memory's side of a record: its advice, the agent's search plan and the items it was shown."""
    items = [[strings.add(i.id), strings.add(i.kind), int(bool(i.cited)), int(bool(i.leak)), int(i.poison),
              [strings.add(c) for c in i.contributors or ()]] for i in recommendation.items]
    return [recommendation.text, int(recommendation.leak_flag), recommendation.error, _plan(recommendation.plan), items]


def _apis(recommendation: Recommendation | None, strings: _Interned) -> list[Any] | None:
    """[labels, hits] of advice checked against the reference's APIs; None without labels."""
    if recommendation is None or not recommendation.api_labels:
        return None
    hits = recommendation.api_hits
    return [[strings.add(label) for label in recommendation.api_labels],
            None if hits is None else [strings.add(hit) for hit in hits]]


def _plan(plan: dict[str, Any]) -> str:
    if not plan:
        return ""
    queries = "; ".join(str(q) for q in plan.get("queries") or [])
    return (f"{plan.get('intent') or '-'} Library: {plan.get('library')}. Queries: {queries}. "
            f"Avoid: {plan.get('avoid') or '-'}")


def _number(value: Any) -> float | None:
    """A finite number, or None (JSON has no NaN)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


class _Interned:
    """Strings that repeat across records (item ids, kinds, judges, contributors), each stored once."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, value: str) -> int:
        if value not in self._index:
            self._index[value] = len(self.values)
            self.values.append(value)
        return self._index[value]
