"""Advice naming a reference API, counted again on the advice's own words, for runs written before that rule.

    PYTHONPATH=. python bench/bench_api_hits.py results/local_study/*spark__* results/local_study_v2/*spark__*

A record's `api_hits` are the reference's labelled APIs its advice names. `agent-8` appends the names of the
documents its advice cited (`Documentation cited: ...`, memory/agent.py: CITED_LINE); records written before
`own_words` counted a name in that line as named by the advice, which credits the model with what it was shown.
Per run: labelled advised records, those whose advice names a label as recorded, and as counted on the model's own
words (the rule now).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spark_eval.memory.agent import own_words
from spark_eval.memory.docs.apilabels import names_api
from spark_eval.records.run import RunFiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories")
    args = parser.parse_args()
    print(f"{'run':<60} {'labelled':>8} {'recorded':>9} {'own words':>9}")
    for run in args.runs:
        labelled = recorded = own = 0
        for record in RunFiles(run).records:
            rec = record.recommendation
            if record.epoch or record.repeat or rec is None or not rec.text or not rec.api_labels:
                continue
            labelled += 1
            recorded += bool(rec.api_hits)
            own += bool(names_api(own_words(rec.text), rec.api_labels))
        print(f"{str(run):<60} {labelled:>8} {recorded:>9} {own:>9}"
              + (f"   {own / labelled:.3f}" if labelled else ""))


if __name__ == "__main__":
    main()
