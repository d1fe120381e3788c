"""How often the retrieval agent's replies are usable, on a stratified set of real DS-1000 problems.

    python bench/bench_agent.py                          # 28 problems (4 per library), memory=spark_small
    python bench/bench_agent.py --limit 7 --agent local_1p5b --out results/bench/agent.json
    python bench/bench_agent.py --set tune               # 28 problems outside the local study's 150 (for tuning)
    python bench/bench_agent.py --set study              # the local study's 150 problems (for reporting)
    python bench/bench_agent.py --set study --limit 42 --agent local_1p5b   # the first 42 of the study's draw (its 1.5B part)
    python bench/bench_agent.py --set tune --memory spark_drafted --drafts results/gate_tune100/qwen2.5-coder-0.5b__none__s0 memory.kb.max_chunks=600

Builds (or loads) the memory's documentation KB, then asks the agent for each problem's recommendation,
without the coder and without learning (bench/bench_loop.py runs the whole loop). Prints per problem whether
the plan and the advice were usable, whether the advice cites an item it was shown, replies that ran to their
token cap and model seconds; then the rates over the set, with the share of advice that names one of the reference
solution's labelled APIs (`api_hits`) and the advice that copies an item it did not cite. Uses the response cache unless --no-cache.
`--drafts <a finished memory=none run of the coder>` hands the memory each problem's draft (that run's code, what
the pipeline drafts at temperature 0), for a memory that reads it (memory=spark_drafted).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench_loop import SET_SIZE, agent_rates, agent_row, problem_set

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.models.pool import ModelPool
from spark_eval.memory import build_memory
from spark_eval.records.run import RunFiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None,
                        help=f"how many problems (first, tune: {SET_SIZE} by default; study: all 150 unless given)")
    parser.add_argument("--set", choices=("first", "tune", "study"), default="first",
                        help="first: the stratified first --limit problems; tune: --limit stratified problems outside "
                             "the local study's; study: the local study's problems")
    parser.add_argument("--memory", default="spark_small")
    parser.add_argument("--agent", default="local")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--drafts", type=Path, default=None, help="a memory=none run whose code is each draft")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and the rates as JSON")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. memory.kb.max_chunks=600")
    args = parser.parse_args()
    overrides = [f"memory={args.memory}", f"model@agent={args.agent}", *args.overrides]
    if args.no_cache:
        overrides.append("agent.cache_path=null")
    cfg = compose_config(*overrides, f"dataset.limit={args.limit or SET_SIZE}")
    benchmark = build_benchmark(cfg.dataset)
    problems = problem_set(args.set, args.limit, overrides)
    drafts = {r.problem_id: r.code or "" for r in RunFiles(args.drafts).records} if args.drafts else None
    missing = sorted({p.problem_id for p in problems} - set(drafts)) if drafts is not None else []
    if missing:
        raise SystemExit(f"--drafts {args.drafts} has no record of problems {missing}; give a memory=none run over "
                         "the same problems")
    with tempfile.TemporaryDirectory() as run_dir:
        memory = build_memory(cfg.memory, ModelPool(), Path(run_dir), benchmark)
        rows = asyncio.run(_advise(memory, problems, drafts))
        memory.close()
    rates = agent_rates(rows)
    print(json.dumps(rates, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"agent": args.agent, "memory": args.memory, "set": args.set, "rates": rates,
                                        "rows": rows},
                                       indent=2) + "\n")


async def _advise(memory, problems, drafts: dict[int, str] | None) -> list[dict]:
    await memory.prepare(problems)
    rows = []
    print(f"{'id':>4} {'library':<11} {'plan':>4} {'advice':>6} {'cites':>5} {'capped':>6} {'s':>6}  error")
    for problem in problems:
        rec = await memory.recommend(problem, draft=drafts[problem.problem_id] if drafts is not None else None)
        row = agent_row(problem.problem_id, problem.library, rec)
        rows.append(row)
        print(f"{row['problem_id']:>4} {row['library']:<11} {row['plan']!s:>4} {row['advice']!s:>6} {row['cites']!s:>5}"
              f" {row['capped']:>6} {row['seconds']:>6}  {row['error'] or ''}", flush=True)
    return rows


if __name__ == "__main__":
    main()
