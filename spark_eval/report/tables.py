"""The paper's tables from an Analysis: mean code quality per model and condition, recommendation helpfulness."""
from __future__ import annotations

import math

import pandas as pd

from spark_eval.records import BANDS
from spark_eval.report.published import (AT_LEAST_GOOD_SHARE, HUMAN_REFERENCE, PAPER_CONDITION, PAPER_N, PAPER_ORDER,
                                         TOP_BAND_SHARE, paper_row, published_quality)
from spark_eval.report.render import Table
from spark_eval.stats import Analysis
from spark_eval.stats.analysis import ALL_MODELS, COUNT_COLUMNS
from spark_eval.stats.base import REFERENCE
from spark_eval.stats.units import AT_LEAST_GOOD
from spark_eval.stats.validity import MIN_CLASS

MISSING = "-"
LEAKY_NOTE = ("Leaky: the memory was built with access to reference answers (the paper's synthetic experience); "
              "its numbers are not a fair test.")
SOURCE_NOTE = "Paper: Tablan et al. (2025), arXiv:2511.08301."
PAPER_N_NOTE = (f"Paper n: the problems behind the paper's figure (it ran all {PAPER_N} DS-1000 problems for each "
                "coder and condition), beside ours; '-' where the row has no paper figure.")
PASS_AT_K_NOTE = ("Pass@k: the chance that at least one of k answers passes, by the unbiased estimator of Chen et al. "
                  "(2021), 1 - C(n-c, k)/C(n, k) with n samples per problem of which c passed, per run and epoch, "
                  "averaged over problems; a problem with fewer than k samples is left out of pass@k (the n of "
                  "comparisons.csv's pass@k rows counts the problems kept).")
COUNTS_NOTE = ("Runs: seeds. Errors: records that ended in an error after their retries (e.g. an agent, learner, "
               "coder or judge call that kept failing); a resumed run retries them. Advice given: records whose "
               "coder was shown the memory's advice; Advice errors: records whose memory gave none and recorded why "
               "(recommendation.error, e.g. an agent reply still unusable after its retry), answered without "
               "advice and counted like any other. Abstained: records whose memory's gate chose silence "
               "(memory.gate), answered by the coder's own draft: a decision, counted like any other. No "
               "verdict: records without an error that lack the quality judge's verdict. Problems: the n of the "
               "paper table.")


def quality_table(analysis: Analysis) -> Table:
    """Pass@1 (and pass@k when the runs drew several samples per problem) first, execution being the outcome that
    needs no judge; then mean quality per model without and with each memory, what its judge's validity allows, the
    human reference, the paper's numbers beside; the problems both are computed on (n),
    the paper's (where it has a figure) and the records left out for an error."""
    means = analysis.conditions.set_index(["model", "memory", "metric"])
    counts = analysis.counts.set_index(["model", "memory"])
    validity = analysis.validity.set_index(["model", "memory"])
    at_k = [metric for metric in analysis.units if metric.startswith("pass@")]
    rows = []
    for model, memory in _ordered(analysis.counts, analysis.options.baseline):
        quality, passed = _lookup(means, model, memory, "quality"), _lookup(means, model, memory, "pass")
        label, condition = _labels(model, memory)
        paper = HUMAN_REFERENCE if model == REFERENCE else published_quality(model, memory)
        count = counts.loc[(model, memory)]
        judged = validity.loc[(model, memory)] if (model, memory) in validity.index else None
        rows.append({
            "model": label, "memory": memory, "condition": condition,
            "pass_rate": passed["mean"], **{_column(m): _lookup(means, model, memory, m)["mean"] for m in at_k},
            "quality": quality["mean"], "ci_low": quality["ci_low"], "ci_high": quality["ci_high"],
            "judge_auroc": judged["auroc"] if judged is not None else None,
            "judge_signal": judged["signal"] if judged is not None else "",
            "paper": paper, "diff": quality["mean"] - paper if paper is not None else math.nan,
            "n": int(count["problems"]), "paper_n": PAPER_N if paper is not None else None,
            "errors": int(count["errors"]), "leaky": bool(count["leaky"]),
        })
    data = pd.DataFrame(rows, columns=["model", "memory", "condition", "pass_rate", *map(_column, at_k), "quality",
                                       "ci_low", "ci_high", "judge_auroc", "judge_signal", "paper", "diff", "n",
                                       "paper_n", "errors", "leaky"])
    data = data.astype({"paper_n": "Int64"})
    cells = tuple((r["model"], r["condition"], _pct(r["pass_rate"]), *(_pct(r[_column(m)]) for m in at_k),
                   _num(r["quality"]), _ci(r["ci_low"], r["ci_high"]), r["judge_signal"] or MISSING, _num(r["paper"]),
                   _num(r["diff"], signed=True), str(r["n"]), _count(r["paper_n"]), str(r["errors"]),
                   "yes" if r["leaky"] else "") for r in rows)
    judge, options = analysis.judges["quality"], analysis.options
    graded = (f"Quality: mean 1-5 score of {judge} per problem (its verdicts, then the problem's epochs, repeats "
              f"and seeds averaged)." if judge else "Quality: these runs hold no quality verdicts.")
    notes = [f"{graded} 95% CI: bootstrap over origin families ({options.bootstrap} resamples, seed {options.seed}). "
             "Pass@1: share of a problem's records passing DS-1000's tests, averaged over problems. "
             f"{same_records_note(judge)} {SOURCE_NOTE} {PAPER_N_NOTE}"]
    notes += [signal_note(analysis)] if judge else []
    notes += [PASS_AT_K_NOTE] if at_k else []
    notes += [LEAKY_NOTE] if data["leaky"].any() else []
    return Table("Pass@1 and mean code quality (1-5) per model, without and with Spark", (
        "Model", "Condition", "Pass@1", *(m.capitalize() for m in at_k), "Quality", "95% CI", "Judge signal", "Paper",
        "Ours - paper", "n", "Paper n", "Errors", "Leaky"), "llr" + "r" * len(at_k) + "rllrrrrrl",
        cells, data,
        tuple(notes))


SIGNAL_NOTE = (
    "Judge signal: does {judge} separate the records that pass DS-1000's tests from those that fail? Its AUROC "
    "against execution on the row's records, with a 95% CI over origin families (the judge validity table): "
    "'signal' when the CI lies above 0.5; 'no signal on these records' when it covers 0.5, and then the row's "
    "quality mean and every quality comparison resting on it measure nothing that execution confirms; 'inverted' "
    "below 0.5; 'too few to tell' with fewer than {least} passing or failing records.")


def signal_note(analysis: Analysis) -> str:
    """What the Judge signal column says, and the judge's AUROC over all the report's records."""
    note = SIGNAL_NOTE.format(judge=analysis.judges["quality"], least=MIN_CLASS)
    pooled = analysis.validity[analysis.validity["model"] == ALL_MODELS]
    if len(pooled):
        row = pooled.iloc[0]
        note += (f" Over every coder's records pooled, {row['n']} ({row['n_passed']} passing): AUROC {_num(row['auroc'])} "
                 f"{_ci(row['auroc_ci_low'], row['auroc_ci_high'])}, {row['signal']}.")
    return note


def validity_table(analysis: Analysis) -> Table | None:
    """The quality judge against execution: all records pooled, then per condition (None without a judge)."""
    data = analysis.validity
    if not len(data):
        return None
    order = {pair: i for i, pair in enumerate(_ordered(analysis.counts, analysis.options.baseline))}
    data = data.iloc[sorted(range(len(data)), key=lambda i: order.get(tuple(data.iloc[i][["model", "memory"]]), -1))]
    cells = tuple((_labels(r.model, r.memory)[0] if r.model != ALL_MODELS else r.model,
                   r.memory if r.model == ALL_MODELS else _labels(r.model, r.memory)[1], str(r.n), str(r.n_passed),
                   _num(r.auroc), _ci(r.auroc_ci_low, r.auroc_ci_high), r.signal) for r in data.itertuples())
    note = (f"{analysis.judges['quality']} against execution: AUROC, the chance that a passing record scores above "
            "a failing one (ties half), with its 95% CI by bootstrap over origin families; signal as the quality "
            f"table's Judge signal column says (fewer than {MIN_CLASS} passing or failing records: too few to tell). "
            "A judge's validity on the answers it was tuned on is not its validity: scripts/judge_validity.py "
            "measures it on a held-out half.")
    return Table("Quality judge validity against execution", (
        "Model", "Condition", "Records", "Passing", "AUROC", "95% CI", "Signal"), "llrrrll", cells, data, (note,))


def _column(metric: str) -> str:
    """The data column of a `pass@k` metric: `pass_at_k`."""
    return metric.replace("@", "_at_")


def same_records_note(judge: str | None) -> str:
    """The one sentence saying which records the metrics use, so a reader knows quality and pass@1 match."""
    if judge:
        return ("Quality and pass@1 use the same records, those without an error that hold a quality verdict, so "
                "n counts the same problems for both; Errors: records left out because they ended in an error.")
    return "Pass@1 uses the records without an error; n: problems; Errors: records left out for an error."


def counts_table(analysis: Analysis) -> Table:
    """Per condition: its records, those that ended in an error, advice given or not, verdicts missing, and the
    problems the metrics are computed on."""
    counted = [k for k in COUNT_COLUMNS if k not in ("model", "memory", "leaky")]  # the numbers, in their order
    counts, rows = analysis.counts.set_index(["model", "memory"]), []
    for model, memory in _ordered(analysis.counts, analysis.options.baseline):
        count = counts.loc[(model, memory)]
        label, condition = _labels(model, memory)
        rows.append({"model": label, "memory": memory, "condition": condition, **{k: count[k] for k in counted},
                     "leaky": bool(count["leaky"])})
    data = pd.DataFrame(rows, columns=["model", "memory", "condition", *counted, "leaky"])
    cells = tuple((r["model"], r["condition"], *(MISSING if pd.isna(r[k]) else str(int(r[k])) for k in counted),
                   "yes" if r["leaky"] else "") for r in rows)
    notes = [COUNTS_NOTE, same_records_note(analysis.judges["quality"])]
    notes += [LEAKY_NOTE] if data["leaky"].any() else []
    return Table("Records per condition", (
        "Model", "Condition", "Runs", "Records", "Errors", "Advice given", "Advice errors", "Abstained", "No verdict",
        "Problems", "Leaky"), "llrrrrrrrrl", cells, data, tuple(notes))


def helpfulness_table(analysis: Analysis) -> Table | None:
    """Share of recommendations judged EXTREMELY HELPFUL and at least GOOD; the paper's pooled figures and its n
    beside."""
    if analysis.bands.empty:
        return None
    shares = analysis.bands.set_index(["model", "memory", "band"])
    order = [*PAPER_ORDER, ALL_MODELS]
    keys = sorted({(m, mem) for m, mem, _ in shares.index},
                  key=lambda k: (k[0] == ALL_MODELS, _model_rank(k[0], order), k[0], k[1]))
    rows = []
    for model, memory in keys:
        top, good = shares.loc[(model, memory, BANDS[0])], shares.loc[(model, memory, AT_LEAST_GOOD)]
        published = model == ALL_MODELS and memory == PAPER_CONDITION
        row = paper_row(model)
        rows.append({"model": row.label if row else model, "memory": memory, "condition": _condition(memory),
                     "n": int(top["n"]), "paper_n": PAPER_N if published else None,
                     "top": top["mean"], "top_low": top["ci_low"], "top_high": top["ci_high"],
                     "good": good["mean"], "good_low": good["ci_low"], "good_high": good["ci_high"],
                     "paper_top": TOP_BAND_SHARE if published else math.nan,
                     "paper_good": AT_LEAST_GOOD_SHARE if published else math.nan, "leaky": bool(top["leaky"])})
    data = pd.DataFrame(rows).astype({"paper_n": "Int64"})
    cells = tuple((r["model"], r["condition"], str(r["n"]), _count(r["paper_n"]),
                   _pct(r["top"]), _ci(r["top_low"], r["top_high"], pct=True),
                   _pct(r["good"]), _ci(r["good_low"], r["good_high"], pct=True), _pct(r["paper_top"]),
                   _pct(r["paper_good"]), _pts(r["top"] - r["paper_top"]), _pts(r["good"] - r["paper_good"]),
                   "yes" if r["leaky"] else "") for r in rows)
    notes = [f"Helpfulness of the memory's recommendations as judged by {analysis.judges['helpfulness']}; "
             f"bands {', '.join(BANDS)}. 95% CI: bootstrap over origin families. The paper reports its figures "
             f"pooled over coders (the '{ALL_MODELS}' with-Spark row). {SOURCE_NOTE} {PAPER_N_NOTE}"]
    notes += [LEAKY_NOTE] if data["leaky"].any() else []
    return Table("Recommendation helpfulness", (
        "Model", "Condition", "n", "Paper n", "EXTREMELY HELPFUL", "95% CI", "At least GOOD", "95% CI",
        "Paper: EXTREMELY HELPFUL", "Paper: at least GOOD", "Ours - paper (EXTREMELY HELPFUL)",
        "Ours - paper (at least GOOD)", "Leaky"), "llrrrlrlrrrrl", cells, data, tuple(notes))


def _labels(model: str, memory: str) -> tuple[str, str]:
    """The model's name in the tables (the paper's spelling when it has one) and the condition's."""
    if model == REFERENCE:
        return "Human reference", "DS-1000 solutions"
    row = paper_row(model)
    return row.label if row else model, _condition(memory)


def _ordered(conditions: pd.DataFrame, baseline: str) -> list[tuple[str, str]]:
    """Paper models in the paper's order, then other models by name, the human reference last; within a model
    the baseline, then Spark, then other memories by name."""
    pairs = sorted(set(zip(conditions["model"], conditions["memory"])))
    return sorted(pairs, key=lambda p: (p[0] == REFERENCE, _model_rank(p[0], PAPER_ORDER), p[0],
                                        p[1] != baseline, p[1] != PAPER_CONDITION, p[1]))


def _model_rank(model: str, order: list[str] | tuple[str, ...]) -> int:
    row = paper_row(model)
    label = row.label if row else model
    return order.index(label) if label in order else len(order)


def _lookup(means: pd.DataFrame, model: str, memory: str, metric: str) -> dict:
    key = (model, memory, metric)
    if key not in means.index:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0, "leaky": None}
    return means.loc[key].to_dict()


def _condition(memory: str) -> str:
    return {"none": "without Spark", "spark": "with Spark"}.get(memory, f"memory={memory}")


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value: float | None, signed: bool = False) -> str:
    return MISSING if _missing(value) else f"{value:+.2f}" if signed else f"{value:.2f}"


def _count(value: int | None) -> str:
    """A count, or MISSING where there is none."""
    return MISSING if value is None or pd.isna(value) else str(int(value))


def _pct(value: float | None) -> str:
    return MISSING if _missing(value) else f"{100 * value:.1f}%"


def _pts(value: float | None) -> str:
    return MISSING if _missing(value) else f"{100 * value:+.1f} pts"


def _ci(low: float, high: float, pct: bool = False) -> str:
    if _missing(low) or _missing(high):
        return MISSING
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if pct else f"[{low:.2f}, {high:.2f}]"
