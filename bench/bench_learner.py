"""The learner and its screen on fixed attempts: a finished Spark run's rounds learned again, with nothing else run.

    PYTHONPATH=. python bench/bench_learner.py results/bench_loop_local_local_tune/qwen2.5-coder-0.5b__spark__s0
    PYTHONPATH=. python bench/bench_learner.py <run> --learner local_1p5b --out results/bench/learner.json
    PYTHONPATH=. python bench/bench_learner.py <run> memory.learning.traces_per_call=1   # a setting changed

Reads the run's records in stream order (its manifest's `problem_ids`), cuts them into its rounds
(`pipeline.round_size` of its overrides), and has a fresh memory of the run's config learn each round in turn, with
the learner and the screen of this checkout. The attempts and their advice stay the run's, so two learner prompts or
screens are compared on the same attempts in minutes; the loop bench (bench/bench_loop.py) runs the whole loop,
where the advice follows what was learned. Prints what bench_loop prints of the learner: candidates, what the screen
and curation did with them (REJECT by reason), the insights that survive, and each rejection.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench_loop import learner_figures
from omegaconf import OmegaConf

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.memory import build_memory
from spark_eval.models.pool import ModelPool
from spark_eval.records import read_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run of a learning memory (bench_loop's)")
    parser.add_argument("--learner", default=None, help="the learner's model config (default: the run's)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("overrides", nargs="*", help="config overrides on top of the run's (memory.learning.*)")
    args = parser.parse_args()
    overrides = [o for o in OmegaConf.load(args.run_dir / ".hydra" / "overrides.yaml")
                 if not o.startswith(("experiment_name=", "hydra.", "pipeline.progress="))]
    if args.learner:
        overrides = [o for o in overrides if not o.startswith("model@learner=")] + [f"model@learner={args.learner}"]
    cfg = compose_config(*overrides, *args.overrides)
    order = json.loads((args.run_dir / "manifest.json").read_text())["problem_ids"]
    records = {r.problem_id: r for r in read_records(args.run_dir / "records.jsonl", repair=False)
               if r.epoch == 0 and r.repeat == 0}
    stream = [records[pid] for pid in order if pid in records]
    size = cfg.pipeline.round_size
    benchmark = build_benchmark(cfg.dataset)
    with tempfile.TemporaryDirectory() as run_dir:
        memory = build_memory(cfg.memory, ModelPool(), Path(run_dir), benchmark)
        asyncio.run(_learn(memory, benchmark, stream, size))
        memory.checkpoint(0)
        memory.close()
        figures = {"run_dir": str(args.run_dir), "learner": args.learner or "the run's",
                   "overrides": args.overrides, "records": len(stream),
                   "round_size": size, **learner_figures(Path(run_dir))}
    print(json.dumps({k: v for k, v in figures.items() if k != "rejected"}, indent=2))
    for rejected in figures["rejected"]:
        print(f"REJECT {rejected['title']!r}: {rejected['reason']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


async def _learn(memory, benchmark, stream, size) -> None:
    by_id = {p.problem_id: p for p in benchmark.select()}
    await memory.prepare([by_id[r.problem_id] for r in stream])
    for number, start in enumerate(range(0, len(stream), size)):
        await memory.learn(stream[start : start + size], 0, number)
        print(f"round {number}: {len(memory.loop.health)} health rows", flush=True)


if __name__ == "__main__":
    main()
