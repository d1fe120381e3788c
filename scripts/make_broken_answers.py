"""Write an answers file of deliberately broken solutions: each reference with its last line removed.

    python scripts/make_broken_answers.py --limit 28 --out results/broken_answers.jsonl
    python -m spark_eval model=answers model.path=results/broken_answers.jsonl model.name=broken dataset.limit=28

A negative control for judges: grade these and the references with the same judge, then compare the
judge's scores with what execution says (scripts/judge_validity.py).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


from spark_eval.config import compose_config
from spark_eval.data import build_benchmark


def without_last_line(code: str) -> str:
    lines = code.rstrip("\n").split("\n")
    return "\n".join(lines[:-1]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="the same stratified subset as dataset.limit")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    overrides = [] if args.limit is None else [f"dataset.limit={args.limit}"]
    cfg = compose_config(*overrides)
    problems = build_benchmark(cfg.dataset).select()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for p in problems:
            f.write(json.dumps({"id": p.problem_id, "code": without_last_line(p.reference_code)}) + "\n")
    print(f"{len(problems)} broken answers -> {args.out}")


if __name__ == "__main__":
    main()
