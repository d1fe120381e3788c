"""Judge validity from records only: quality vs execution, agreement between judges and repeats, missing rates."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

import numpy as np

from spark_eval.records.format import GRADED, Judgment, Record
from spark_eval.stats.base import REFERENCE


def judge_label(judgment: Judgment) -> str:
    """A judge as validity figures group it: its name and its rubric version (`quality/<model>+ref@quality-3`);
    verdicts of two rubric versions are two judges."""
    return f"{judgment.judge}@{judgment.version}" if judgment.version else judgment.judge


def verdict_table(records: Iterable[Record]) -> dict[tuple[str, int], dict[str, float | None]]:
    """(judge label, repeat) -> {record key: score or None}."""
    table: dict[tuple[str, int], dict[str, float | None]] = defaultdict(dict)
    for record in records:
        for j in record.judgments:
            table[(judge_label(j), j.repeat)][record.key] = j.score
    return table


def missing_rates(records: Iterable[Record], label: Callable[[Judgment], str] = judge_label
                  ) -> dict[str, float]:
    """Per judge (as `label` names it): the share of its verdicts that are missing (no score), over all repeats."""
    given: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        for j in record.judgments:
            given[label(j)].append(j.score is None)
    return {judge: sum(missing) / len(missing) for judge, missing in given.items()}


MIN_CLASS = 5
"""Fewer passing or failing records than this, and a judge's AUROC on them tells nothing either way."""
SIGNALS = ("signal", "no signal on these records", "inverted", "too few to tell")
"""What `signal` says of a judge on a run's records: its AUROC's 95% CI (clustered by origin family) lies above
0.5, covers it, lies below it; or the records hold fewer than MIN_CLASS passing or failing answers."""
AUROC_BOOTSTRAP = 2000


def auroc(passed: np.ndarray, scores: np.ndarray) -> float:
    """The probability that a passing answer scores above a failing one, ties counting half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pass = int(passed.sum())
    n_fail = len(passed) - n_pass
    return float((ranks[passed].sum() - n_pass * (n_pass + 1) / 2) / (n_pass * n_fail))


def auroc_interval(passed: list[bool], scores: list[float], families: list[Any], reps: int = AUROC_BOOTSTRAP,
                   seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of the AUROC, resampling whole origin families (answers of one family are not
    independent); a resample with a single class is drawn again (NaN when none of `reps` tries has both)."""
    passed_a, scores_a = np.asarray(passed, dtype=bool), np.asarray(scores, dtype=float)
    index: dict[Any, list[int]] = defaultdict(list)
    for i, family in enumerate(families):
        index[family].append(i)
    groups = [np.asarray(rows) for rows in index.values()]
    rng = np.random.default_rng(seed)
    found: list[float] = []
    for _ in range(reps):
        rows = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        if 0 < passed_a[rows].sum() < len(rows):
            found.append(auroc(passed_a[rows], scores_a[rows]))
    if not found:
        return float("nan"), float("nan")
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)


def signal(n_passed: int, n_failed: int, low: float, high: float) -> str:
    """One of SIGNALS for a judge's AUROC interval on records with `n_passed` and `n_failed` answers."""
    if min(n_passed, n_failed) < MIN_CLASS or not np.isfinite(low):
        return SIGNALS[3]
    if low > 0.5:
        return SIGNALS[0]
    return SIGNALS[2] if high < 0.5 else SIGNALS[1]


def judge_signal(passed: list[bool], scores: list[float], families: list[Any]) -> dict[str, Any]:
    """A quality judge's AUROC against execution on these answers, its 95% CI clustered by origin family
    (`auroc_interval`) and what that allows one to say (`signal`): SIGNAL_COLUMNS."""
    n_passed = int(sum(passed))
    both_classes = 0 < n_passed < len(passed)
    value = auroc(np.asarray(passed, dtype=bool), np.asarray(scores, dtype=float)) if both_classes else None
    low, high = auroc_interval(passed, scores, families) if both_classes else (float("nan"), float("nan"))
    return {"n": len(scores), "n_passed": n_passed, "auroc": value,
            "auroc_ci_low": low if np.isfinite(low) else None, "auroc_ci_high": high if np.isfinite(high) else None,
            "signal": signal(n_passed, len(passed) - n_passed, low, high)}


SIGNAL_COLUMNS = ("n", "n_passed", "auroc", "auroc_ci_low", "auroc_ci_high", "signal")


def quality_vs_execution(records: list[Record], judge: str, repeat: int = 0) -> dict[str, Any]:
    """Does the judge's 1-5 score separate code that passes DS-1000's tests from code that fails them?

    `judge_signal` (AUROC of score for pass with its CI and what it allows one to say), point-biserial
    correlation, and the false-accept rate: the share of failing solutions the judge scored 4 or 5.
    """
    from scipy.stats import pointbiserialr

    scores = verdict_table(records)[(judge, repeat)]
    passed, graded, families = [], [], []
    for r in records:
        if r.status in GRADED and scores.get(r.key) is not None:
            passed.append(r.passed)
            graded.append(float(scores[r.key]))
            families.append(r.origin_family)
    out: dict[str, Any] = judge_signal(passed, graded, families)
    failing = [s for s, p in zip(graded, passed) if not p]
    out["false_accept_rate"] = sum(s >= 4 for s in failing) / len(failing) if failing else None
    if 0 < sum(passed) < len(passed) and len(set(graded)) > 1:
        r, p = pointbiserialr(passed, graded)
        out["point_biserial"], out["point_biserial_p"] = float(r), float(p)
    else:
        out["point_biserial"] = out["point_biserial_p"] = None
    return out


def agreement(a: list[float | None], b: list[float | None]) -> dict[str, Any]:
    """Krippendorff's alpha and quadratic-weighted Cohen's kappa (missing values allowed). On 1-5 integer scores
    alpha is ordinal; when either rater gives continuous scores (expected scores) alpha is interval and kappa is
    taken on the scores rounded to the nearest level (`scale` says which)."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    data = np.array([[np.nan if x is None else x for x in a], [np.nan if x is None else x for x in b]], dtype=float)
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    continuous = any(float(v) != int(v) for pair in pairs for v in pair)
    out: dict[str, Any] = {"n_pairs": len(pairs), "krippendorff_alpha": None, "qwk": None,
                           "scale": "interval" if continuous else "ordinal"}
    if len(pairs) >= 2 and len({v for pair in pairs for v in pair}) > 1:
        if continuous:
            out["krippendorff_alpha"] = float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))
        else:
            out["krippendorff_alpha"] = float(
                krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]))
        x, y = zip(*pairs)
        out["qwk"] = float(cohen_kappa_score([int(round(v)) for v in x], [int(round(v)) for v in y],
                                             weights="quadratic", labels=[1, 2, 3, 4, 5]))
    return out


def validity_report(records: list[Record]) -> dict[str, Any]:
    """Everything above for every judge in the records (what stage=judge writes to validity.json)."""
    table = verdict_table(records)
    kinds = {judge_label(j): j.kind for r in records for j in r.judgments}
    judges = sorted(kinds)
    report: dict[str, Any] = {"missing_rate": {}, "vs_execution": {}, "between_judges": {}, "between_repeats": {}}
    report["missing_rate"] = missing_rates(records)
    for judge in judges:
        if kinds[judge] == "quality":
            report["vs_execution"][judge] = quality_vs_execution(records, judge)
        if (judge, 1) in table:
            keys = sorted(table[(judge, 0)])
            report["between_repeats"][judge] = agreement([table[(judge, 0)].get(k) for k in keys],
                                                         [table[(judge, 1)].get(k) for k in keys])
    for i, a in enumerate(judges):
        for b in judges[i + 1 :]:
            if kinds[a] == kinds[b]:
                keys = sorted(set(table[(a, 0)]) & set(table[(b, 0)]))
                report["between_judges"][f"{a} ~ {b}"] = agreement([table[(a, 0)][k] for k in keys],
                                                                   [table[(b, 0)][k] for k in keys])
    return report


VALIDITY_COLUMNS = ("model", "memory", "judge", *SIGNAL_COLUMNS)


def validity_table(records: Any, judge: str | None, pooled: tuple[str, str]) -> Any:
    """The quality judge's `judge_signal` on the report's records: every coder's records pooled (the row labelled
    `pooled`, model and memory; the human reference's solutions left out, since a judge shown the reference
    grades it against itself), then each model x memory's (VALIDITY_COLUMNS; empty without a judge).
    `records`: stats.units' record table of the scored records (`passed`, `quality`, `family`)."""
    import pandas as pd

    rows = []
    if judge is not None and len(records):
        coders = records[records["model"] != REFERENCE]
        parts = [*([(pooled, coders)] if len(coders) else []), *records.groupby(["model", "memory"], sort=True)]
        for (model, memory), part in parts:
            rows.append({"model": model, "memory": memory, "judge": judge, **signal_of(part)})
    return pd.DataFrame(rows, columns=list(VALIDITY_COLUMNS))


def comparison_signals(comparisons: Any, records: Any, judge: str | None) -> list[str]:
    """For each row of a comparisons frame: the quality judge's `signal` on the records of both arms it compares
    (a quality row), or "" (a row of another metric). A baseline written `<model>/<memory>` (an equivalence row)
    is that model's."""
    marks = []
    for row in comparisons.itertuples():
        if row.metric != "quality" or judge is None:
            marks.append("")
            continue
        other, _, memory = row.baseline.rpartition("/")
        arms = {(row.model, row.condition), (other or row.model, memory)}
        chosen = records[[pair in arms for pair in zip(records["model"], records["memory"])]]
        marks.append(signal_of(chosen)["signal"])
    return marks


def signal_of(records: Any) -> dict[str, Any]:
    """`judge_signal` on a record table's rows (stats.units.record_table: `passed`, `quality`, `family`)."""
    return judge_signal([bool(p) for p in records["passed"]], [float(q) for q in records["quality"]],
                        list(records["family"]))
