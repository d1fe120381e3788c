"""summary.json: pass rates overall, per library and per perturbation type, derived from records only; with several
samples per problem, pass@k beside them (see stats.passk)."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from spark_eval.records.files import write_json
from spark_eval.records.format import EXEC_STATUSES, NO_STATUS, Record, Usage
from spark_eval.records.run import SUMMARY, VALIDITY
from spark_eval.stats.passk import ks_for, mean_pass_at_k
from spark_eval.stats.validity import missing_rates


def write_derived(path: Path, records: list[Record]) -> dict[str, Any]:
    """summary.json, and validity.json when there are verdicts: both recomputable from records alone."""
    summary = summarize(records)
    write_json(path / SUMMARY, summary)
    if summary.get("judge_missing_rate"):
        from spark_eval.stats.validity import validity_report  # scipy and sklearn: only with verdicts

        write_json(path / VALIDITY, validity_report(records))
    return summary


def summarize(records: Iterable[Record]) -> dict[str, Any]:
    """Counts and pass rates; a record without an execution result counts as not passed.

    With several samples per problem (records of one problem and epoch, told apart by `repeat`): `samples`, the
    most records any problem has in an epoch, and `pass_at_k` overall and per group for every k of K_VALUES up to
    it; a problem with fewer than k samples (a run not finished yet) is left out of pass@k and counted in
    `pass_at_k_left_out`. With one sample per problem none of these keys is there.
    """
    records = list(records)
    by_library: dict[str, list[Record]] = defaultdict(list)
    by_perturbation: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_library[r.library].append(r)
        by_perturbation[r.perturbation_type].append(r)
    counts = sample_counts(records)
    samples = max((n for n, _ in counts), default=0)
    ks = ks_for(samples) if samples > 1 else ()
    left_out = {str(k): mean_pass_at_k(counts, k)[1] for k in ks}
    return {
        **_rate(records, ks),
        **({"samples": samples, "pass_at_k_left_out": left_out} if ks else {}),
        "statuses": _statuses(records),
        "errors": sum(1 for r in records if r.error),
        "by_library": {k: _rate(v, ks) for k, v in sorted(by_library.items())},
        "by_perturbation": {k: _rate(v, ks) for k, v in sorted(by_perturbation.items())},
        "ledger": ledger(records),
        **advised(records),
        **judged(records),
    }


def advised(records: list[Record]) -> dict[str, Any]:
    """With a memory: how many records got advice, why some did not, and the leakage-flag rate."""
    recs = [r.recommendation for r in records if r.recommendation]
    if not recs:
        return {}
    given = [x for x in recs if x.text]
    return {
        "leaky": any(r.leaky for r in records),
        "recommendations": {"given": len(given), "missing": len(recs) - len(given),
                            "reasons": dict(Counter(str(x.error).split(":")[0] for x in recs if not x.text))},
        "leak_flag_rate": sum(1 for x in recs if x.leak_flag) / len(recs),
    }


def judged(records: list[Record]) -> dict[str, Any]:
    """Per judge: mean quality score, helpfulness band shares, missing-verdict rate (empty without judges)."""
    scores: dict[str, list] = defaultdict(list)
    bands: dict[str, Counter] = defaultdict(Counter)
    kinds = {}
    for r in records:
        for j in r.judgments:
            kinds[j.judge] = j.kind
            scores[j.judge].append(j.score)
            if j.kind == "helpfulness" and j.band:
                bands[j.judge][j.band] += 1
    if not kinds:
        return {}
    present = {k: [s for s in v if s is not None] for k, v in scores.items()}
    return {
        "quality_mean": {k: sum(v) / len(v) if v else None for k, v in present.items() if kinds[k] == "quality"},
        "helpfulness_bands": {k: {b: c / sum(n.values()) for b, c in n.items()} for k, n in bands.items()},
        "judge_missing_rate": missing_rates(records, label=lambda j: j.judge),
    }


def sample_counts(records: Iterable[Record]) -> list[tuple[int, int]]:
    """(n, c) per problem and epoch: its records (the samples drawn) and those that passed."""
    counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        tally = counts[(r.problem_id, r.epoch)]
        tally[0] += 1
        tally[1] += int(r.passed)
    return [(n, c) for n, c in counts.values()]


def _rate(records: list[Record], ks: tuple[int, ...] = ()) -> dict[str, Any]:
    n = len(records)
    passed = sum(1 for r in records if r.passed)
    infra = sum(1 for r in records if r.status == "infra_error")
    rate = {"n": n, "passed": passed, "pass_rate": passed / n if n else None, "infra_error": infra}
    if ks:
        counts = sample_counts(records)
        rate["pass_at_k"] = {str(k): mean_pass_at_k(counts, k)[0] for k in ks}
    return rate


def _statuses(records: list[Record]) -> dict[str, int]:
    counts = Counter(r.status for r in records)
    return {s: counts.get(s, 0) for s in (*EXEC_STATUSES, NO_STATUS)}


def ledger(records: Iterable[Record]) -> dict[str, dict[str, float]]:
    """What each component spent in this run: calls made, tokens, cost and latency; cache hits apart.

    A completion served from the cache counts in `cached` only: it cost nothing this time.
    """
    coder, agent, judge = _empty_account(), _empty_account(), _empty_account()
    for r in records:
        usage = r.recommendation.trace.get("usage") if r.recommendation else None
        if usage:
            _charge(agent, Usage.from_json(usage))
        if r.completion:
            _charge(coder, Usage.of(r.completion))
        for j in r.judgments:
            _charge(judge, j.usage)
    return {"coder": coder, "agent": agent, "judge": judge}


def _empty_account() -> dict[str, float]:
    return {"calls": 0, "cached": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_s": 0.0}


def _charge(account: dict[str, float], usage: Usage) -> None:
    """Add a usage account to a component's (a count it lacks adds nothing: a cache hit's tokens cost nothing)."""
    for field in account:
        account[field] += getattr(usage, field) or 0


def format_pass_table(summary: dict[str, Any]) -> str:
    """A plain-text pass table per library and per perturbation type, for the log; with several samples per
    problem, a column per pass@k (k > 1) after the rate."""
    ks = [k for k in summary.get("pass_at_k", {}) if k != "1"]
    lines = [f"{'group':<20} {'n':>5} {'passed':>7} {'rate':>7} {'infra':>6}" + "".join(f" {'pass@' + k:>8}"
                                                                                    for k in ks)]
    for title, groups in (("library", summary["by_library"]), ("perturbation", summary["by_perturbation"])):
        lines.append(f"-- by {title}")
        for name, row in groups.items():
            lines.append(_row(name, row))
    lines.append(_row("all", summary))
    return "\n".join(lines)


def _row(name: str, row: dict[str, Any]) -> str:
    rate = f"{row['pass_rate']:.3f}" if row["pass_rate"] is not None else "-"
    at_k = "".join(f" {_share(v):>8}" for k, v in row.get("pass_at_k", {}).items() if k != "1")
    return f"{name:<20} {row['n']:>5} {row['passed']:>7} {rate:>7} {row['infra_error']:>6}{at_k}"


def _share(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def format_not_passed(records: Sequence[Record], names: dict[int, str], limit: int = 40) -> str:
    """The records that did not pass, one line each (problem name, status, the error's own line), for the log;
    at most `limit` lines. Empty when every record passed."""
    failed = [r for r in records if not r.passed]
    if not failed:
        return ""
    lines = [f"not passed: {len(failed)} of {len(records)}"]
    for r in sorted(failed, key=lambda r: (r.library, r.problem_id, r.key))[:limit]:
        lines.append(f"  {names.get(r.problem_id, str(r.problem_id)):<16} {r.status:<11} {error_line(r)}")
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more (records.jsonl has them all)")
    return "\n".join(lines)


def error_line(record: Record) -> str:
    """Why a record did not pass, in one line: its error, or the line of the program's output that names the
    exception (`AttributeError: module 'numpy' has no attribute 'alen'`), or the exception's name."""
    if record.error:
        return record.error.splitlines()[0][:160]
    if not record.exec:
        return ""
    kind = record.exec.error_type or ""
    tail = [line.strip() for line in record.exec.stderr_tail.splitlines() if line.strip()]
    named = [line for line in tail if kind and line.startswith(kind)]
    return (named[-1] if named else kind or (tail[-1] if tail else ""))[:160]

