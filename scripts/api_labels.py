"""Static API labels of the DS-1000 problems: the documented names each reference solution uses, and their figures.

    python scripts/api_labels.py                          # figures, and 10 random problems' labels to eyeball
    python scripts/api_labels.py --out labels.jsonl       # also one JSON line per problem: id, library, labels
    python scripts/api_labels.py paths.cache=<dir>        # any config override (where the names list is kept)

The names are the KB's list of documented qualified names (`memory.kb`, `load_api_names`: kept beside the KB,
else walked once from the grading environment); the labelling rule is `spark_eval/memory/docs/apilabels.py`'s.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter
from pathlib import Path

from spark_eval.config import compose_config
from spark_eval.data.ds1000 import read_dataset
from spark_eval.memory.docs.apilabels import ApiNames, api_labels
from spark_eval.memory.docs.kb import load_api_names
from spark_eval.types import LIBRARIES, Problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, help="write one JSON line per problem here")
    parser.add_argument("--seed", type=int, default=0, help="picks the problems shown")
    parser.add_argument("overrides", nargs="*", help="config overrides (paths.cache=..., execution.python=...)")
    args = parser.parse_args()
    cfg = compose_config("memory=spark", *args.overrides)
    problems = read_dataset(cfg.dataset)
    names = ApiNames(load_api_names(cfg.memory.kb))
    labels = {p.problem_id: api_labels(p, names) for p in problems}
    report(problems, labels, random.Random(args.seed))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps({"problem_id": p.problem_id, "library": p.library,
                                                "labels": list(labels[p.problem_id])}) + "\n" for p in problems))
        print(f"\n{len(problems)} problems -> {args.out}")


def report(problems: list[Problem], labels: dict[int, tuple[str, ...]], rng: random.Random) -> None:
    print(f"{'library':<12}{'problems':>9}{'labelled':>10}{'share':>8}{'mean':>7}{'median':>8}")
    for library in (*LIBRARIES, "all"):
        counts = [len(labels[p.problem_id]) for p in problems if library in (p.library, "all")]
        labelled = sum(1 for n in counts if n)
        print(f"{library:<12}{len(counts):>9}{labelled:>10}{labelled / len(counts):>8.1%}"
              f"{statistics.mean(counts):>7.2f}{statistics.median(counts):>8g}")
    common = Counter(label for found in labels.values() for label in found).most_common(20)
    print(f"\n{len({label for found in labels.values() for label in found})} distinct labels; the 20 most common:")
    for label, count in common:
        print(f"{count:>6}  {label}")
    print("\n10 random problems:")
    for problem in sorted(rng.sample(problems, 10), key=lambda p: p.problem_id):
        print(f"\n#{problem.problem_id} {problem.library}: {', '.join(labels[problem.problem_id]) or '(none)'}")
        print("\n".join("    " + line for line in problem.reference_code.strip().splitlines()[:8]))


if __name__ == "__main__":
    main()
