"""Harness overhead per model call, against a local fake OpenAI-compatible server with a fixed latency.

    PYTHONPATH=. python bench/bench_models.py                 # 8 waves of 0.2 s calls at concurrency 1, 8 and 64
    PYTHONPATH=. python bench/bench_models.py --waves 1       # one burst: as many calls as the concurrency
    PYTHONPATH=. python bench/bench_models.py --latency 0.05 --concurrency 16

Each concurrency sends `waves x concurrency` calls through `OpenAIModel.complete` (response cache off, so every
call reaches the server; each reserves its worst case on a ledger and is charged, as in a run); the ideal wall time is waves x latency, what a provider answering in exactly that
latency allows. The fake server runs in a process of its own, so the figure is the harness's: SDK, retry
wrapper, semaphore, JSON. `client ms/call` is the harness process's CPU time per call.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spark_eval.models.base import GenerationParams
from spark_eval.models.ledger import Ledger
from spark_eval.models.openai import OpenAIModel
from spark_eval.pipeline.budget import Budget


async def call_all(model: OpenAIModel, calls: int, tag: str) -> None:
    params = GenerationParams(max_tokens=16)
    await asyncio.gather(*(model.complete([{"role": "user", "content": f"{tag}{i}"}], params) for i in range(calls)))


def measure(base_url: str, concurrency: int, waves: int) -> tuple[float, float]:
    """Wall seconds and client CPU seconds of `waves x concurrency` calls, after one warm-up wave (connections
    open, SDK client built)."""
    model = OpenAIModel(name="bench", model="fake", base_url=base_url, api_key_env=None, concurrency=concurrency,
                        cache_path=None, price={"input": 1.0, "output": 1.0})
    model.ledger = Ledger()  # as in a run with budget.usd: every call holds its worst case in the shared ledger
    folder = tempfile.TemporaryDirectory()
    Budget(1e9, "sweep", Path(folder.name) / "run", 0.0, model.ledger)

    async def timed() -> tuple[float, float]:
        await call_all(model, concurrency, "warm")
        wall, cpu = time.monotonic(), time.process_time()
        await call_all(model, waves * concurrency, "q")
        measured = time.monotonic() - wall, time.process_time() - cpu
        await model.aclose()
        return measured

    with folder:
        return asyncio.run(timed())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        print(f"{args.waves} waves per concurrency, server latency {args.latency * 1000:.0f} ms")
        print(f"{'concurrency':>11} {'calls':>6} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} "
              f"{'extra ms/call':>14} {'client ms/call':>15}")
        for concurrency in map(int, args.concurrency.split(",")):
            calls = args.waves * concurrency
            wall, cpu = measure(base_url, concurrency, args.waves)
            ideal = args.waves * args.latency
            extra = (wall - ideal) / calls * 1000  # harness time per call beyond the server's latency
            print(f"{concurrency:>11} {calls:>6} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>10.2f} {extra:>14.2f} "
                  f"{cpu / calls * 1000:>15.2f}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
