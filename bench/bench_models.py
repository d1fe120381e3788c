"""Harness overhead per model call, against a local fake OpenAI-compatible server with a fixed latency.

    python bench/bench_models.py                     # 64 calls of 0.2 s at concurrency 1, 8 and 64
    python bench/bench_models.py --calls 256 --latency 0.05

For each concurrency, the ideal wall time is calls x latency / concurrency; the difference, per call, is
what the harness (SDK, retry wrapper, semaphore, JSON, the fake server's own Python) costs on this machine.
No cache, so every call reaches the server.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from spark_eval.models.base import GenerationParams
from spark_eval.models.openai import OpenAIModel
from tests.fakes.openai_server import FakeOpenAIServer


async def call_all(model: OpenAIModel, calls: int) -> None:
    params = GenerationParams(max_tokens=16)
    await asyncio.gather(*(model.complete([{"role": "user", "content": f"q{i}"}], params) for i in range(calls)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args()
    with FakeOpenAIServer(latency_s=args.latency) as server:
        print(f"{args.calls} calls, server latency {args.latency * 1000:.0f} ms")
        print(f"{'concurrency':>11} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} {'extra ms/call':>14}")
        for concurrency in map(int, args.concurrency.split(",")):
            model = OpenAIModel(name="bench", model="fake", base_url=server.base_url, api_key_env=None,
                                concurrency=concurrency, cache_path=None)
            start = time.monotonic()
            asyncio.run(call_all(model, args.calls))
            wall = time.monotonic() - start
            ideal = args.calls * args.latency / concurrency
            extra = (wall - ideal) / args.calls * 1000  # harness time per call beyond the server's latency
            print(f"{concurrency:>11} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>10.2f} {extra:>14.1f}")


if __name__ == "__main__":
    main()
