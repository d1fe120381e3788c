"""Which insights each retirement rule would retire, and after how many uses, replayed over finished Spark runs.

    PYTHONPATH=. python bench/bench_retire.py results/local_study_v2/qwen2.5-coder-0.5b__spark__s0 \
        --baseline results/local_study/qwen2.5-coder-0.5b__none__s0
    PYTHONPATH=. python bench/bench_retire.py results/community_poison_paired/*poison* \
        --baseline results/community_poison_paired/*__none__s0

Each record's outcome is charged to the insights it used (`Recommendation.charged_insights`, as curation charges
it), record by record in the order the runs wrote them (several runs of one shared store: interleaved by position,
as their members ran side by side). Rules, each at margins 1, 2 and 3:

- `base_rate` (the paper's loop, memory=spark): failures beyond what the stream's fail rate so far predicts;
- `paired` (memory=spark_paired): passes the uses turned into failures less failures turned into passes, against
  the same coder's outcome on the same problem without memory (`--baseline`: finished memory=none runs).

Per rule and margin: insights retired, of those used, poison and honest apart (poison: marked in the final store
snapshot's provenance, by experiment=community_poison's bad member), and the uses to retirement (median, min,
max). Offline, a retired insight goes on being counted (in a real run it would no longer be shown), so this is
when each rule would first have retired it, not what the run would have done after.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path
from statistics import median
from typing import Mapping, Sequence

from spark_eval.memory.learning.curator import base_fail_rate
from spark_eval.memory.learning.loop import baseline_outcomes
from spark_eval.records import GRADED, Record
from spark_eval.records.run import FINAL, SNAPSHOT_INSIGHTS, RunFiles

MARGINS = (1, 2, 3)


def replay(records: Sequence[Record], before: Mapping[tuple[str, int], bool]) -> tuple[dict[str, int], dict]:
    """Each insight's uses, and per (rule, margin) the use at which each insight that reached the margin first did
    (`base_rate` always; `paired` when `before`, the no-memory outcomes by (coder, problem), is given)."""
    rules = ["base_rate"] + (["paired"] if before else [])
    uses: dict[str, int] = defaultdict(int)
    counts: dict[str, dict[str, list[int]]] = {rule: defaultdict(lambda: [0, 0]) for rule in rules}  # [help, harm]
    retired_at: dict[tuple[str, int], dict[str, int]] = {(rule, m): {} for rule in rules for m in MARGINS}
    graded = [0, 0]
    for record in records:
        if record.status not in GRADED or record.recommendation is None:
            continue
        passed = bool(record.passed)
        graded[0 if passed else 1] += 1
        fail_rate = base_fail_rate(graded)
        was = before.get((record.model, record.problem_id))
        for item in record.recommendation.charged_insights:
            uses[item.id] += 1
            counts["base_rate"][item.id][0 if passed else 1] += 1
            if "paired" in counts and was is not None and was != passed:
                counts["paired"][item.id][0 if passed else 1] += 1
            for rule in rules:
                helped, harmed = counts[rule][item.id]
                harm = harmed - helped if rule == "paired" else harmed - (helped + harmed) * fail_rate
                for margin in MARGINS:
                    if harm >= margin:
                        retired_at[(rule, margin)].setdefault(item.id, uses[item.id])
    return dict(uses), retired_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="Spark run directories (one shared store: all its members)")
    parser.add_argument("--baseline", type=Path, nargs="*", default=[], help="memory=none runs, for the paired rule")
    args = parser.parse_args()
    files = [RunFiles(run) for run in args.runs]
    records = [r for batch in zip_longest(*(f.records for f in files)) for r in batch if r is not None]
    poison = {i["id"] for f in files for i in f.snapshot(FINAL, SNAPSHOT_INSIGHTS)
              if any(p.get("poison") for p in i["provenance"])}
    before = baseline_outcomes([str(b) for b in args.baseline]) if args.baseline else {}
    uses, retired_at = replay(records, before)
    honest_n, poison_n = sum(i not in poison for i in uses), sum(i in poison for i in uses)
    graded = [r.passed for r in records if r.status in GRADED and r.recommendation is not None]
    print(f"{len(records)} records; insights used: {honest_n} honest, {poison_n} poison; pass rate "
          f"{sum(graded) / max(1, len(graded)):.3f}" + (f"; without memory {sum(before.values()) / len(before):.3f}"
                                                        if before else ""))
    print(f"{'rule':<10}{'margin':>7}{'honest retired':>16}{'poison retired':>16}   uses to retirement (median, min-max)")
    for (rule, margin), found in retired_at.items():
        spread = sorted(found.values())
        text = f"{median(spread):g} ({spread[0]}-{spread[-1]})" if spread else "-"
        print(f"{rule:<10}{margin:>7}{sum(i not in poison for i in found):>9} of {honest_n:<4}"
              f"{sum(i in poison for i in found):>9} of {poison_n:<4}   {text}")


if __name__ == "__main__":
    main()
