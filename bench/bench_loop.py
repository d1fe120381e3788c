"""Spark's loop on the embedded models: how often the agent and the learner give usable replies, what survives.

    python bench/bench_loop.py                                   # 28 problems (4 per library), rounds of 4
    python bench/bench_loop.py --agent local_1p5b --learner local_1p5b --out results/bench/loop-1p5b.json
    python bench/bench_loop.py --set tune                        # 28 problems outside the local study's (for tuning)
    python bench/bench_loop.py --run-dir results/bench_loop/<run>  # the figures of a run that exists

Runs `python -m spark_eval experiment=demo` on a stratified set with `memory=spark_small` and no judge (the
embedded coder answers with Spark's advice, DS-1000's tests grade it, the learner learns after each round), or
reads a run directory that holds such a run. Prints per problem whether the plan and the advice were usable and
cited a shown item, then:

- agent: usable plan, usable advice, advice citing a shown item (shares of problems), replies that ran to their
  token cap (share of calls), model seconds per call (replies from the response cache not counted);
- learner: usable replies (share of calls), candidates proposed, what the screen and curation did with them
  (ADD, MERGE, REJECT by reason), insights active at the end, and each of them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.data.base import stratified_subset
from spark_eval.records import Recommendation, read_lines, read_records

ROOT = Path(__file__).resolve().parent.parent
SET_SIZE = 28
"""Problems in the `first` and `tune` sets unless `--limit` says otherwise (4 per library)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=SET_SIZE)
    parser.add_argument("--agent", default="local")
    parser.add_argument("--learner", default="local")
    parser.add_argument("--set", choices=("first", "tune"), default="first",
                        help="first: the stratified first --limit problems (the demo's); tune: --limit stratified "
                             "problems outside the local study's")
    parser.add_argument("--round-size", type=int, default=4)
    parser.add_argument("--run-dir", type=Path, default=None, help="report on this run instead of running one")
    parser.add_argument("--out", type=Path, default=None, help="write the figures and rows as JSON")
    args = parser.parse_args()
    run_dir = args.run_dir or run_loop(args)
    figures = loop_figures(run_dir)
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


def run_loop(args: argparse.Namespace) -> Path:
    name = f"bench_loop_{args.agent}_{args.learner}" + ("_tune" if args.set == "tune" else "")
    chosen = ([f"dataset.limit={args.limit}"] if args.set == "first" else
              ["dataset.limit=null", "dataset.ids=[" + ",".join(str(p.problem_id)
                                                             for p in problem_set("tune", args.limit, [])) + "]"])
    command = [sys.executable, "-m", "spark_eval", "experiment=demo", "hydra.mode=RUN", "memory=spark_small",
               "judge=none", *chosen, f"pipeline.round_size={args.round_size}",
               f"model@agent={args.agent}", f"model@learner={args.learner}", f"experiment_name={name}",
               "pipeline.progress=false"]
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    found = sorted((ROOT / "results" / name).glob("*__spark__s*"))
    if not found:
        sys.exit(f"no run directory under results/{name}")
    return found[-1]


def problem_set(name: str, limit: int | None, overrides: list[str]) -> list:
    """The problems of `--set`: the local study's (`experiment=local_study`'s selection; with `limit`, the first
    `limit` of its stratified draw, as its arms run with `dataset.limit`), a stratified `limit` of the others
    (`tune`), or the stratified first `limit` (`first`). `limit` None: SET_SIZE for `first` and `tune`."""
    if name == "study":
        part = [f"dataset.limit={limit}"] if limit else []
        return build_benchmark(compose_config(*overrides, "experiment=local_study", *part).dataset).select()
    limit = limit or SET_SIZE
    if name == "first":
        return build_benchmark(compose_config(*overrides, f"dataset.limit={limit}").dataset).select()
    study = build_benchmark(compose_config(*overrides, "experiment=local_study").dataset).select()
    taken = {p.problem_id for p in study}
    every = build_benchmark(compose_config(*overrides).dataset)
    rest = [p for p in every.select() if p.problem_id not in taken]
    return sorted(stratified_subset(rest, limit, every.cfg.subset_seed, every.libraries), key=lambda p: p.problem_id)


def agent_row(problem_id: int, library: str, recommendation: Recommendation | None) -> dict:
    """One problem's agent figures from its recommendation."""
    rec = recommendation or Recommendation(text="")
    usage = rec.trace.get("usage") or {}
    return {"problem_id": problem_id, "library": library, "plan": bool(rec.plan),
            "advice": bool(rec.text), "cites": any(i.cited for i in rec.items),
            "labelled": bool(rec.api_labels), "names_api": bool(rec.api_hits), "api_hits": list(rec.api_hits or ()),
            "api_labels": list(rec.api_labels or ()), "used": [i.id for i in rec.items if i.used],
            "shown": [i.id for i in rec.items], "text": rec.text,
            "found": [[h["id"] for h in q.get("hits") or () if isinstance(h, dict)] for q in rec.trace.get("queries") or ()],
            "uncited_copies": sum(1 for i in rec.items if i.copied),
            "docs_shown": sum(1 for i in rec.items if i.kind == "doc"),
            "calls": usage.get("calls", 0) + usage.get("cached", 0), "model_calls": usage.get("calls", 0),
            "capped": usage.get("capped", 0),
            "seconds": round(usage.get("latency_s", 0.0), 1), "output_tokens": usage.get("output_tokens", 0),
            "error": rec.error}


def agent_rates(rows: list[dict]) -> dict:
    n, calls, model_calls = len(rows), sum(r["calls"] for r in rows), sum(r["model_calls"] for r in rows)
    share = lambda key: round(sum(1 for r in rows if r[key]) / n, 3) if n else None  # noqa: E731
    labelled = [r for r in rows if r["advice"] and r["labelled"]]
    return {"n": n, "plan_usable": share("plan"), "advice_usable": share("advice"), "cites_shown_item": share("cites"),
            "names_reference_api": round(sum(r["names_api"] for r in labelled) / len(labelled), 3) if labelled else None,
            "labelled_advice": len(labelled),
            "advice_with_uncited_copy": sum(1 for r in rows if r["uncited_copies"]),
            "docs_shown_per_problem": round(sum(r["docs_shown"] for r in rows) / n, 2) if n else None,
            "calls": calls, "capped_calls": round(sum(r["capped"] for r in rows) / calls, 3) if calls else None,
            "seconds_per_call": round(sum(r["seconds"] for r in rows) / model_calls, 1) if model_calls else None}


def loop_figures(run_dir: Path) -> dict:
    records = read_records(run_dir / "records.jsonl", repair=False)
    rows = [agent_row(r.problem_id, r.library, r.recommendation) for r in sorted(records, key=lambda r: r.problem_id)]
    print(f"{'id':>4} {'library':<11} {'plan':>4} {'advice':>6} {'cites':>5} {'capped':>6} {'s':>6}  error")
    for r in rows:
        print(f"{r['problem_id']:>4} {r['library']:<11} {r['plan']!s:>4} {r['advice']!s:>6} {r['cites']!s:>5}"
              f" {r['capped']:>6} {r['seconds']:>6}  {r['error'] or ''}")
    shown = run_dir.resolve().relative_to(ROOT) if run_dir.resolve().is_relative_to(ROOT) else run_dir
    return {"run_dir": str(shown), "agent": agent_rates(rows), "learner": learner_figures(run_dir),
            "passed": sum(1 for r in records if r.passed), "rows": rows}


def learner_figures(run_dir: Path) -> dict:
    """What the learner proposed over a run and what became of it: its memory's health rows, ops and final insights."""
    health = read_lines(run_dir / "memory" / "health.jsonl", repair=False)
    ops = read_lines(run_dir / "memory" / "final" / "ops.jsonl", repair=False)
    insights = read_lines(run_dir / "memory" / "final" / "insights.jsonl", repair=False)
    usage = Counter()
    for h in health:
        usage.update({k: v for k, v in (h.get("usage") or {}).items() if isinstance(v, (int, float))})
    calls = usage["calls"] + usage["cached"]
    unusable = sum(h.get("unusable", 0) for h in health)
    rejects = Counter(_reason(op["detail"].get("reason", "")) for op in ops if op["op"] == "REJECT")
    active = [i for i in insights if i.get("status") == "active"]
    return {
        "rounds": len(health), "calls": calls,
        "usable_replies": round((calls - unusable) / calls, 3) if calls else None,
        "capped_calls": round(usage["capped"] / calls, 3) if calls else None,
        "seconds_per_call": round(usage["latency_s"] / usage["calls"], 1) if usage["calls"] else None,
        "candidates": sum(h.get("candidates", 0) for h in health),
        "ops": dict(Counter(op["op"] for op in ops)), "rejected_by_reason": dict(rejects),
        "insights_active": len(active),
        "insights": [{"library": i.get("library"), "title": i["title"], "content": i["content"]} for i in active],
        "rejected": [{k: op["detail"].get(k) for k in ("reason", "title", "content", "applies_when", "library")}
                     for op in ops if op["op"] == "REJECT"],
    }


def _reason(reason: str) -> str:
    """A REJECT's reason without the specifics (the screen's quoted words, a parse error's details)."""
    return reason.split(" (", 1)[0].split(":", 2)[0] if not reason.startswith("screen:") else reason.split(" (", 1)[0]


if __name__ == "__main__":
    main()
