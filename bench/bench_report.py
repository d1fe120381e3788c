"""Wall time of stage=report on 6 synthetic runs (3 models x none/spark) of 1000 records each.

    PYTHONPATH=. python bench/bench_report.py               # 1000 records per run, 2000 bootstrap resamples
    PYTHONPATH=. python bench/bench_report.py --records 200 --bootstrap 500

Every record has a quality verdict and every Spark record a helpfulness verdict. Prints the time to load the
runs, then the time of the whole stage as the command line runs it (loading again, statistics, tables,
figures, the HTML report), and the size of report.html.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spark_eval.config import compose_config
from spark_eval.report import report_stage
from spark_eval.stats import load_runs
from tests.fakes.runs import synthetic_experiment

MODELS = ("qwen3-coder-30b", "claude-haiku-4.5", "gpt-5-codex")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="records per run")
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic_experiment(root / "runs", MODELS, n=args.records, reference=False)
        start = time.monotonic()
        runs = load_runs(str(root / "runs" / "*"))
        loaded = time.monotonic() - start
        cfg = compose_config("stage=report", f"results={root / 'runs'}/*", f"report.out={root / 'report'}",
                             f"report.bootstrap={args.bootstrap}")
        start = time.monotonic()
        written = report_stage(cfg)
        wall = time.monotonic() - start
        size = (root / "report" / "report.html").stat().st_size
    records = sum(len(r.records) for r in runs)
    print(f"{len(runs)} runs, {records} records, {args.bootstrap} bootstrap resamples")
    print(f"load runs: {loaded:6.2f} s")
    print(f"stage=report: {wall:6.2f} s wall ({len(written)} files; report.html {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
