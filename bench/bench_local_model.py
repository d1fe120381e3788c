"""Throughput of the embedded coder on real DS-1000 prompts (llama.cpp in-process, CPU).

    python bench/bench_local_model.py                 # 14 problems, two per library, model=local
    python bench/bench_local_model.py --limit 7 --model local_1p5b --threads 1
    python bench/bench_local_model.py --flash-attn false   # llama.cpp's fused attention off (on by default)

Prints, per problem, prompt and output tokens and wall time, then output tokens per second of
generation wall time (prompt processing included) over the whole set, and the two speeds apart: each prompt is
first evaluated alone (a reply of one token), then answered (the prompt held, so only generation is left). The
last line is the model config's `speed` (what `dry_run=true` counts compute time with). No cache.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.models.coder import ChatCoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=14)
    parser.add_argument("--model", default="local")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--flash-attn", choices=("true", "false"), default=None)
    args = parser.parse_args()
    overrides = [f"model={args.model}", f"dataset.limit={args.limit}", "model.cache_path=null"]
    if args.threads:
        overrides.append(f"model.n_threads={args.threads}")
    if args.flash_attn:
        overrides.append(f"model.flash_attn={args.flash_attn}")
    cfg = compose_config(*overrides)
    benchmark = build_benchmark(cfg.dataset)
    problems = benchmark.select()
    model = instantiate(cfg.model)
    start = time.monotonic()
    asyncio.run(model.complete([{"role": "user", "content": "hi"}], model.default_params(max_tokens=1)))
    print(f"{cfg.model.name}: load {time.monotonic() - start:.1f} s, n_threads={cfg.model.n_threads}")
    coder = ChatCoder(model, benchmark, seed=0)
    total_in = total_out = total_s = prompt_s = 0.0
    for problem in problems:
        messages, params = coder.request(problem, None)
        start = time.monotonic()
        asyncio.run(model.complete(messages, dataclasses.replace(params, max_tokens=1)))
        evaluated = time.monotonic() - start
        c = asyncio.run(coder.answer(problem, None))
        total_in, total_out, total_s = total_in + c.input_tokens, total_out + c.output_tokens, total_s + c.latency_s
        prompt_s += evaluated
        print(f"{problem.problem_id:>4} {problem.library:<11} prompt {c.input_tokens:>5} in {evaluated:5.1f} s, "
              f"out {c.output_tokens:>5} in {c.latency_s:6.1f} s  {c.finish_reason}")
    print(f"{len(problems)} problems: {total_in:.0f} prompt tokens evaluated in {prompt_s:.1f} s, {total_out:.0f} "
          f"output tokens generated in {total_s:.1f} s")
    print(f"speed: {{prompt_tok_s: {total_in / prompt_s:.0f}, output_tok_s: {total_out / total_s:.1f}}}")


if __name__ == "__main__":
    main()
