"""Judge validity over one or more run directories, from their records only (no model is called).

    python scripts/judge_validity.py results/judge_validity/*/

Prints, per judge: missing-verdict rate, AUROC of the quality score against execution pass/fail,
point-biserial correlation, false-accept rate (failing solutions scored 4 or 5), and agreement
between judges and between repeats where the records have them.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from spark_eval.records import read_records
from spark_eval.stats.validity import validity_report


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python scripts/judge_validity.py <run dir> [<run dir> ...]")
    records = [replace(record, key=f"{run_dir.name}/{record.key}")  # keys are unique per run, not across runs
               for run_dir in map(Path, sys.argv[1:]) for record in read_records(run_dir / "records.jsonl", repair=False)]
    print(json.dumps(validity_report(records), indent=2))


if __name__ == "__main__":
    main()
