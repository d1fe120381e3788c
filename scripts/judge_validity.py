"""Judge validity from records, and held out: a pool of real answers split by origin family into a tuning half and
a test half, the quality judge's AUROC against execution on each, and a pairwise judge measured on the same pairs.

    # every figure validity.json gives, over one or more run directories (no model is called)
    python scripts/judge_validity.py records results/judge_pool/*/

    # a balanced pool of answers from coder runs: per library and half, every passing answer and as many failing
    python scripts/judge_validity.py pool --out results/judge_pool/pool results/judge_pool/qwen* results/local_study/*
    python -m spark_eval stage=judge run_dir=results/judge_pool/pool judge=local   # the absolute judge's verdicts
    python scripts/judge_validity.py pairwise results/judge_pool/pool --judge local  # both orders, resumable
    python scripts/judge_validity.py heldout results/judge_pool/pool                  # the figures, per half

The split is by origin family: a family with a problem among the first `--tuned-limit` of the stratified order
(dataset.limit=70: quality-5 was chosen on answers to them) is in the tuning part, every other family in the test
part. A prompt or scoring change is chosen on the tuning part, and only the test part's figures are reported as
validity. The stratified order is nested (the first 70 problems are among the first 150 and 300), so runs of any
`dataset.limit` split the same way.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from spark_eval.records import Record, append_jsonl, read_lines, read_records
from spark_eval.records.files import write_json, write_jsonl
from spark_eval.records.format import GRADED
from spark_eval.records.run import MANIFEST, RECORDS
from spark_eval.stats.validity import judge_label, judge_signal, validity_report, verdict_table

HALVES = ("tuning", "test")
POOL = "pool.json"
"""The pool's description beside its records: sources, the split, counts per library and half."""
PAIRS = "pairs.jsonl"
"""The pairwise judge's verdicts, one line per pair (both orders), appended as they come."""
TUNED_LIMIT = 70


def half_of(family: tuple[str, int] | list[Any], tuned: set[tuple[str, int]]) -> str:
    """The part an origin family belongs to: tuning when the prompt was chosen on it, else test."""
    return HALVES[0] if (str(family[0]), int(family[1])) in tuned else HALVES[1]


def tuned_families(limit: int) -> set[tuple[str, int]]:
    """The origin families of the first `limit` problems of the stratified order (dataset.limit=`limit`)."""
    from spark_eval.config import compose_config
    from spark_eval.data import build_benchmark

    if limit <= 0:
        return set()
    cfg = compose_config(f"dataset.limit={limit}")
    return {tuple(p.origin_family) for p in build_benchmark(cfg.dataset).select()}


def _rank(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _matched(failing: list[Record], solved: set[int]) -> list[Record]:
    """Failing answers in the order the pool takes them: first one per problem that a chosen answer passes, then
    a second per such problem, and so on, then the rest; hash rank within each. So the pass/fail contrast is
    within problems as far as the answers allow, and a judge cannot score a problem's difficulty for its answer."""
    seen: dict[int, int] = defaultdict(int)
    order = []
    for r in sorted(failing, key=lambda r: _rank(r.key)):
        order.append((r.problem_id not in solved, seen[r.problem_id], _rank(r.key), r))
        seen[r.problem_id] += 1
    return [r for *_, r in sorted(order, key=lambda t: t[:3])]


def pool(sources: list[Path], out: Path, tuned_limit: int) -> dict[str, Any]:
    """Write the balanced pool (a run directory stage=judge can judge) and return its description."""
    tuned = tuned_families(tuned_limit)
    answers: dict[tuple[int, str], Record] = {}  # (problem, code) -> the first answer with that code
    manifests = []
    for source in sources:
        manifests.append(json.loads((source / MANIFEST).read_text()))
        for record in read_records(source / RECORDS, repair=False):
            if record.status in GRADED and record.code and record.error is None:
                answers.setdefault((record.problem_id, record.code.strip()),
                                   replace(record, key=f"{source.name}/{record.key}", judgments=(),
                                           recommendation=None))  # the code is judged, not the advice
    hashes = {m.get("dataset_hash") for m in manifests}
    if len(hashes) != 1:
        sys.exit(f"the sources were made from {len(hashes)} different benchmark copies; pool runs of one benchmark")
    groups: dict[tuple[str, str, bool], list[Record]] = defaultdict(list)
    for record in answers.values():
        groups[(half_of(record.origin_family, tuned), record.library, record.passed)].append(record)
    chosen, counts = [], {}
    for half in HALVES:
        for library in sorted({lib for _, lib, _ in groups}):
            passing = sorted(groups[(half, library, True)], key=lambda r: _rank(r.key))
            k = min(len(passing), len(groups[(half, library, False)]))
            failing = _matched(groups[(half, library, False)], {r.problem_id for r in passing[:k]})
            chosen += passing[:k] + failing[:k]
            counts[f"{half}/{library}"] = {"passing": k, "failing": k, "passing_available": len(passing),
                                           "failing_available": len(failing)}
    out.mkdir(parents=True, exist_ok=True)
    kept = {}
    if (out / RECORDS).exists():  # verdicts already given to an answer that stays in the pool are kept
        kept = {r.key: r.judgments for r in read_records(out / RECORDS, repair=False)}
    chosen = sorted((replace(r, judgments=kept.get(r.key, ())) for r in chosen), key=lambda r: (r.problem_id, r.key))
    write_jsonl(out / RECORDS, [r.to_json() for r in chosen])
    manifest = {**manifests[0], "status": "finished", "problem_ids": sorted({r.problem_id for r in chosen}),
                "judge_passes": [], "ledger": {}, "spent_usd": 0.0, "memory": {},
                "identity": {**manifests[0].get("identity", {}), "experiment_name": out.parent.name,
                             "pool.sources": sorted(s.name for s in sources)}}
    if not (out / MANIFEST).exists():
        write_json(out / MANIFEST, manifest)
    description = {"sources": [str(s) for s in sources], "tuned_limit": tuned_limit, "answers": len(chosen),
                   "by_half": {h: sum(1 for r in chosen if half_of(r.origin_family, tuned) == h) for h in HALVES},
                   "coders": {m: sum(1 for r in chosen if r.model == m) for m in sorted({r.model for r in chosen})},
                   "counts": counts,
                   "families": {r.family: half_of(r.origin_family, tuned) for r in chosen}}
    write_json(out / POOL, description)
    return description


def _halves(pool_dir: Path) -> tuple[list[Record], dict[str, str]]:
    records = read_records(pool_dir / RECORDS, repair=False)
    families = json.loads((pool_dir / POOL).read_text())["families"]
    return records, families


def pairs_of(records: list[Record], families: dict[str, str], half: str) -> list[tuple[Record, Record]]:
    """One pair per problem of `half` that has a passing and a failing answer in the pool: the first of each by
    hash rank, in an order its hash gives (so the side an answer is shown on says nothing about it)."""
    by_problem: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        if families[r.family] == half:
            by_problem[r.problem_id].append(r)
    pairs = []
    for pid in sorted(by_problem):
        passing = sorted((r for r in by_problem[pid] if r.passed), key=lambda r: _rank(r.key))
        failing = sorted((r for r in by_problem[pid] if not r.passed), key=lambda r: _rank(r.key))
        if passing and failing:
            a, b = passing[0], failing[0]
            pairs.append((a, b) if _rank(a.key + b.key)[0] % 2 else (b, a))
    return pairs


def pairwise(pool_dir: Path, judge_name: str, half: str) -> int:
    """Ask the pairwise judge (the quality model of `judge=<judge_name>`) about every pair of `half` not yet in
    pairs.jsonl; how many it asked."""
    from spark_eval.config import compose_config
    from spark_eval.data import build_benchmark
    from spark_eval.judge.pairwise import PairwiseJudge
    from spark_eval.models.pool import ModelPool

    cfg = compose_config(f"judge={judge_name}")
    problems = {p.problem_id: p for p in build_benchmark(cfg.dataset).problems()}
    records, families = _halves(pool_dir)
    done = {(row["a"], row["b"], row["version"]) for row in read_lines(pool_dir / PAIRS, repair=True)} \
        if (pool_dir / PAIRS).exists() else set()
    models = ModelPool()
    judge = PairwiseJudge(models.get(cfg.judge.models.quality), show_reference=cfg.judge.show_reference,
                          scoring=cfg.judge.scoring)
    todo = [(a, b) for a, b in pairs_of(records, families, half) if (a.key, b.key, judge.version) not in done]
    print(f"{judge.name}: {len(todo)} pairs of the {half} half to ask", file=sys.stderr)

    async def ask() -> None:
        for i, (a, b) in enumerate(todo):
            verdict = await judge.compare(problems[a.problem_id], a.code or "", b.code or "")
            append_jsonl(pool_dir / PAIRS, {"a": a.key, "b": b.key, "problem_id": a.problem_id, "half": half,
                                            "judge": judge.name, "version": judge.version,
                                            "a_passed": a.passed, "b_passed": b.passed, **verdict.to_json()})
            print(f"{i + 1}/{len(todo)} problem {a.problem_id}: preference for a {verdict.preference}, "
                  f"agree {verdict.agree}", file=sys.stderr, flush=True)

    try:
        asyncio.run(models.closing(ask()))
    finally:
        models.close()
    return len(todo)


def _pick_accuracy(rows: list[tuple[float | None, Any]]) -> dict[str, Any]:
    """How often the passing answer is preferred (a preference exactly even counts half; a missing verdict
    counts as even), with a 95% percentile CI resampling pairs (one pair per problem and family)."""
    values = np.array([0.5 if p is None else 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5 for p, _ in rows])
    if not len(values):
        return {"pairs": 0, "accuracy": None, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(0)
    boot = values[rng.integers(0, len(values), (2000, len(values)))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"pairs": len(values), "accuracy": float(values.mean()), "ci_low": float(low), "ci_high": float(high)}


def heldout(pool_dir: Path) -> dict[str, Any]:
    """Per quality judge and half: its AUROC against execution with the CI over families, false accepts; per
    pairwise judge and half: how often it prefers the passing answer of a pair, beside the absolute judge's
    choice on the same pairs (the higher score; equal scores count half), and how often its two orders agree."""
    records, families = _halves(pool_dir)
    out: dict[str, Any] = {"answers": len(records), "quality": {}, "pairwise": {}}
    table = verdict_table(records)
    quality_judges = sorted({judge_label(j) for r in records for j in r.judgments if j.kind == "quality"})
    for judge in quality_judges:
        scores = table[(judge, 0)]
        for half in HALVES:
            chosen = [r for r in records if families[r.family] == half and scores.get(r.key) is not None]
            found = judge_signal([r.passed for r in chosen], [float(scores[r.key]) for r in chosen],
                                 [r.origin_family for r in chosen])
            failing = [scores[r.key] for r in chosen if not r.passed]
            found["false_accept_rate"] = sum(s >= 4 for s in failing) / len(failing) if failing else None
            out["quality"].setdefault(judge, {})[half] = found
    current = {(a.key, b.key) for half in HALVES for a, b in pairs_of(records, families, half)}
    rows = [row for row in (read_lines(pool_dir / PAIRS, repair=True) if (pool_dir / PAIRS).exists() else [])
            if (row["a"], row["b"]) in current]  # a pool drawn again may have dropped a pair asked before
    for label in sorted({f"{row['judge']}@{row['version']}" for row in rows}):
        for half in HALVES:
            chosen = [row for row in rows if f"{row['judge']}@{row['version']}" == label and row["half"] == half]
            for_passing = [(None if row["preference"] is None else
                            row["preference"] if row["a_passed"] else 1 - row["preference"], row) for row in chosen]
            found = _pick_accuracy(for_passing)
            agree = [row["agree"] for row in chosen if row["agree"] is not None]
            found["orders_agree"] = sum(agree) / len(agree) if agree else None
            for judge in quality_judges:  # the absolute judge on the same pairs
                scores = table[(judge, 0)]
                same = [(None if scores.get(row["a"]) is None or scores.get(row["b"]) is None else
                         0.5 + 0.5 * np.sign((scores[row["a"]] - scores[row["b"]]) * (1 if row["a_passed"] else -1)),
                         row) for row in chosen]
                found[f"absolute {judge}"] = _pick_accuracy(same)
            out["pairwise"].setdefault(label, {})[half] = found
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    records = commands.add_parser("records", help="validity.json's figures over run directories")
    records.add_argument("runs", nargs="+", type=Path)
    made = commands.add_parser("pool", help="a balanced pool of answers from coder runs")
    made.add_argument("runs", nargs="+", type=Path)
    made.add_argument("--out", type=Path, required=True)
    made.add_argument("--tuned-limit", type=int, default=TUNED_LIMIT,
                      help="the problems the quality prompt was chosen on: the first N of the stratified order")
    asked = commands.add_parser("pairwise", help="the pairwise judge on one half's pairs (resumable)")
    asked.add_argument("pool", type=Path)
    asked.add_argument("--judge", default="local", help="the judge config whose quality model compares")
    asked.add_argument("--half", default=HALVES[1], choices=HALVES)
    held = commands.add_parser("heldout", help="the figures per half")
    held.add_argument("pool", type=Path)
    args = parser.parse_args()
    if args.command == "records":
        found = [replace(r, key=f"{run.name}/{r.key}")  # keys are unique per run, not across runs
                 for run in args.runs for r in read_records(run / RECORDS, repair=False)]
        print(json.dumps(validity_report(found), indent=2))
    elif args.command == "pool":
        description = pool(args.runs, args.out, args.tuned_limit)
        print(json.dumps({k: v for k, v in description.items() if k != "families"}, indent=2))
    elif args.command == "pairwise":
        pairwise(args.pool, args.judge, args.half)
    else:
        print(json.dumps(heldout(args.pool), indent=2))


if __name__ == "__main__":
    main()
