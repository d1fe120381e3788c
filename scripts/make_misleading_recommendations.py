"""Three recommendations per problem for testing the helpfulness judge: the memory's own, one written for a
different problem, and a deliberately misleading one.

    python scripts/make_misleading_recommendations.py results/loop/<spark run dir> --out results/helpfulness/recs.jsonl

Reads the run's records (each with the recommendation the memory gave), and writes one JSON line per
(problem, kind): `{"problem_id", "kind": "own" | "other" | "misleading", "text", "source"}`.

- own: the recommendation the memory gave for the problem (records without usable advice are skipped);
- other: the memory's recommendation for another problem of the run, from another library when there is one
  (the run's problems in id order, each paired with the one half the list away);
- misleading: steers away from an API the problem's reference solution uses and towards a documented API of the
  same library that the reference does not use, with false claims (deprecated, wrong results). Seeded by the
  problem id, so the same run gives the same file.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from spark_eval.config import compose_config
from spark_eval.data.ds1000 import read_dataset
from spark_eval.memory.docs.apilabels import IMPORT_ALIASES
from spark_eval.memory.docs.kb import load_api_names

MISLEADING = (
    "Do not use `{right}` for this: it is deprecated in this version and silently gives wrong results on "
    "inputs like these. Use `{wrong}` instead, applied to the whole input at once; it returns exactly the "
    "result the problem asks for, so no further steps are needed. Pitfall: converting the input to another "
    "type first changes the answer, so pass it as it is."
)
_CALLED = re.compile(r"\b([A-Za-z_][\w.]*)\s*\(")
_MODULES = {"Numpy": "numpy", "Pandas": "pandas", "Matplotlib": "matplotlib", "Scipy": "scipy", "Sklearn": "sklearn",
            "Pytorch": "torch", "Tensorflow": "tensorflow"}


def reference_apis(code: str, names: frozenset[str]) -> list[str]:
    """The documented APIs a reference solution calls (`np.argsort(` -> numpy.argsort, `.groupby(` -> groupby)."""
    short = {q.rsplit(".", 1)[-1] for q in names}
    found = []
    for called in _CALLED.findall(code):
        head, dot, rest = called.partition(".")
        qualified = IMPORT_ALIASES[head] + dot + rest if dot and head in IMPORT_ALIASES else called
        if qualified in names:
            found.append(qualified)
        elif called.rsplit(".", 1)[-1] in short and len(called.rsplit(".", 1)[-1]) > 3:
            found.append(called.rsplit(".", 1)[-1])
    return list(dict.fromkeys(found))


def misleading(problem_id: int, library: str, reference: str, names: frozenset[str]) -> str:
    rng = random.Random(problem_id)
    right = reference_apis(reference, names)
    module = _MODULES[library]
    # plausible decoys: public functions one level below the package (numpy.roll, pandas.melt, torch.flip)
    decoys = sorted(n for n in names if n.count(".") == 1 and n.startswith(module + ".")
                    and not n.rsplit(".", 1)[-1].startswith("_") and n not in right
                    and n.rsplit(".", 1)[-1] not in {r.rsplit(".", 1)[-1] for r in right})
    wrong = rng.choice(decoys) if decoys else f"{module}.asarray"
    target = right[0] if right else f"{module} functions"
    return MISLEADING.format(right=target, wrong=wrong)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    records_path = args.run_dir / "records.jsonl"
    if not records_path.is_file():
        sys.exit(f"{records_path} does not exist: give a run directory of a memory run (records.jsonl inside)")
    records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    advised = sorted((r for r in records if (r.get("recommendation") or {}).get("text")), key=lambda r: r["problem_id"])
    if len(advised) < 2:
        sys.exit(f"{args.run_dir}: fewer than two records with a recommendation; run a memory condition first")
    cfg = compose_config("memory=spark")
    problems = {p.problem_id: p for p in read_dataset(cfg.dataset)}
    api_names = load_api_names(cfg.memory.kb)
    rows = []
    half = len(advised) // 2
    for i, record in enumerate(advised):
        problem = problems[record["problem_id"]]
        others = advised[i + half :] + advised[: i + half]
        other = next((o for o in others if o["library"] != record["library"] and o is not record),
                     advised[(i + 1) % len(advised)])
        rows += [
            {"problem_id": problem.problem_id, "kind": "own", "text": record["recommendation"]["text"],
             "source": record["key"]},
            {"problem_id": problem.problem_id, "kind": "other", "text": other["recommendation"]["text"],
             "source": f"{other['key']} (problem {other['problem_id']})"},
            {"problem_id": problem.problem_id, "kind": "misleading", "source": "script",
             "text": misleading(problem.problem_id, problem.library, problem.reference_code,
                                api_names[problem.library])},
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} recommendations for {len(advised)} problems -> {args.out}")


if __name__ == "__main__":
    main()
