"""summary.json: pass rates overall, per library and per perturbation type, derived from records only."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

from spark_eval.types import EXEC_STATUSES


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts and pass rates; a record without an execution result counts as not passed."""
    records = list(records)
    by_library: dict[str, list[dict]] = defaultdict(list)
    by_perturbation: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_library[r["library"]].append(r)
        by_perturbation[r["perturbation_type"]].append(r)
    return {
        **_rate(records),
        "statuses": _statuses(records),
        "errors": sum(1 for r in records if r.get("error")),
        "by_library": {k: _rate(v) for k, v in sorted(by_library.items())},
        "by_perturbation": {k: _rate(v) for k, v in sorted(by_perturbation.items())},
        "ledger": ledger(records),
    }


def _status(record: dict[str, Any]) -> str:
    return (record.get("exec") or {}).get("status", "none")


def _rate(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    passed = sum(1 for r in records if _status(r) == "passed")
    infra = sum(1 for r in records if _status(r) == "infra_error")
    return {"n": n, "passed": passed, "pass_rate": passed / n if n else None, "infra_error": infra}


def _statuses(records: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(_status(r) for r in records)
    return {s: counts.get(s, 0) for s in (*EXEC_STATUSES, "none")}


def ledger(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """What each component spent in this run: calls made, tokens, cost and latency; cache hits apart.

    A completion served from the cache counts in `cached` only: it cost nothing this time.
    """
    coder = {"calls": 0, "cached": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_s": 0.0}
    for r in records:
        c = r.get("completion")
        if not c:
            continue
        if c.get("cached"):
            coder["cached"] += 1
            continue
        coder["calls"] += 1
        coder["input_tokens"] += c.get("input_tokens", 0)
        coder["output_tokens"] += c.get("output_tokens", 0)
        coder["cost_usd"] += c.get("cost_usd", 0.0)
        coder["latency_s"] += c.get("latency_s", 0.0)
    return {"coder": coder}


def format_pass_table(summary: dict[str, Any]) -> str:
    """A plain-text pass table per library and per perturbation type, for the log."""
    lines = [f"{'group':<20} {'n':>5} {'passed':>7} {'rate':>7} {'infra':>6}"]
    for title, groups in (("library", summary["by_library"]), ("perturbation", summary["by_perturbation"])):
        lines.append(f"-- by {title}")
        for name, row in groups.items():
            lines.append(_row(name, row))
    lines.append(_row("all", summary))
    return "\n".join(lines)


def _row(name: str, row: dict[str, Any]) -> str:
    rate = f"{row['pass_rate']:.3f}" if row["pass_rate"] is not None else "-"
    return f"{name:<20} {row['n']:>5} {row['passed']:>7} {rate:>7} {row['infra_error']:>6}"
