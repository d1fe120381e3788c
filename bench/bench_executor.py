"""Wall time to grade DS-1000 reference solutions: warm fork server vs fresh interpreter per program.

    python bench/bench_executor.py                 # all 1000, both modes, 2 workers
    python bench/bench_executor.py --limit 70 --modes fork

Prints, per mode, the wall time (server start-up included), the status counts and the problems that
did not pass, then the strict/fork ratio.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.data.ds1000 import build_program
from spark_eval.execution import ProcessSandbox
from spark_eval.types import LIBRARY_MODULES


def grade_all(problems, execution, mode: str, workers: int) -> tuple[float, dict[int, str]]:
    start = time.monotonic()
    with ProcessSandbox(
        python=execution.python, mode=mode, workers=workers, preload=list(execution.preload),
        seaborn_data=execution.seaborn_data, timeout_s=execution.timeout_s,
    ) as sandbox:
        def grade(problem):
            program = build_program(problem.code_context, problem.reference_code)
            return problem.problem_id, sandbox.run(program, (LIBRARY_MODULES[problem.library],))

        with ThreadPoolExecutor(workers) as pool:
            results = dict(pool.map(grade, problems))
    return time.monotonic() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="a stratified subset of this many problems")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="fork,strict")
    args = parser.parse_args()
    overrides = [] if args.limit is None else [f"dataset.limit={args.limit}"]
    cfg = compose_config(*overrides)
    problems = build_benchmark(cfg.dataset).select()
    walls = {}
    for mode in args.modes.split(","):
        wall, results = grade_all(problems, cfg.execution, mode, args.workers)
        walls[mode] = wall
        counts = Counter(r.status for r in results.values())
        print(f"{mode:>6}: {len(problems)} reference solutions, {args.workers} workers: {wall:7.1f} s wall; {dict(counts)}")
        for pid, r in sorted(results.items()):
            if r.status != "passed":
                print(f"        {pid}: {r.status} {r.error_type}")
    if {"fork", "strict"} <= walls.keys():
        print(f"strict / fork wall-time ratio: {walls['strict'] / walls['fork']:.2f}x")


if __name__ == "__main__":
    main()
