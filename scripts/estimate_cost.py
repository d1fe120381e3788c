"""Estimate the cost and API time of an experiment before running it, from its real prompts and the price table.

    python scripts/estimate_cost.py                       # experiment=paper_main
    python scripts/estimate_cost.py experiment=paper_ablations

Input tokens are counted on the actual prompts the run would send (coder, agent, synthetic hints, judges)
for the selected problems, at 4 characters per token; output tokens per call are the assumptions in
OUTPUT_TOKENS (reasoning models add REASONING_TOKENS). Recommendations and code are stood in by DS-1000's
reference solution where a prompt contains them. Time assumes each provider streams 60 output tokens/s
per request at the model's `concurrency`; vLLM runs are GPU-bound and listed without a time.
"""
from __future__ import annotations

import sys
from typing import Any

from spark_eval.config import compose_config, experiment_sweep
from spark_eval.data import build_benchmark
from spark_eval.judge.helpfulness import helpfulness_messages
from spark_eval.judge.quality import quality_messages
from spark_eval.memory.agent import plan_messages
from spark_eval.records import Recommendation

CHARS_PER_TOKEN = 4
OUTPUT_TOKENS = {"coder": 300, "plan": 150, "advice": 350, "attempt": 300, "hints": 400, "quality": 350,
                 "helpfulness": 450}
REASONING_TOKENS = 1500  # extra output of reasoning models (GPT-5-Codex, Gemini 2.5 Pro) per call
ADVICE_CONTEXT_TOKENS = 1800  # the agent's retrieved items (8 items x ~700 characters) added to its prompt
TOKENS_PER_S = 60.0
TRACE_TOKENS = 700  # one attempt as the learner sees it (problem excerpt, advice, code, feedback)


def tokens(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN


def calls(cfg: Any, problems: list) -> list[tuple[Any, str, int, int]]:
    """(model config, component, input tokens, output tokens) for every call one run makes."""
    memory = cfg.memory.name != "none"
    benchmark = build_benchmark(cfg.dataset)
    epochs = cfg.pipeline.epochs
    out = []
    for p in problems:
        advice = Recommendation(text=p.reference_code * 2) if memory else None
        per_epoch = []
        if cfg.model.name != "reference":
            per_epoch.append((cfg.model, "coder", tokens(benchmark.coder_messages(p, advice)), OUTPUT_TOKENS["coder"]))
        if memory and cfg.memory._target_.endswith(".AgentMemory"):
            plan = tokens(plan_messages(p.prompt))
            per_epoch.append((cfg.memory.agent_model, "agent", plan, OUTPUT_TOKENS["plan"]))
            per_epoch.append((cfg.memory.agent_model, "agent", plan + ADVICE_CONTEXT_TOKENS, OUTPUT_TOKENS["advice"]))
        for entry in cfg.judge.panel:
            kind = entry._target_.rsplit(".", 1)[-1]
            if kind == "QualityJudge":
                n = tokens(quality_messages(p, p.reference_code))
                per_epoch.append((entry.model, "judge", n, OUTPUT_TOKENS["quality"]))
            elif advice is not None:
                n = tokens(helpfulness_messages(p, advice))
                per_epoch.append((entry.model, "judge", n, OUTPUT_TOKENS["helpfulness"]))
        out += per_epoch * epochs  # every epoch sends the same prompts
        if memory and cfg.memory.experience == "online" and "insights" in cfg.memory.sources:
            share = epochs / cfg.memory.learning.traces_per_call  # one learner call per few traces
            out.append((cfg.memory.learner_model, "learner", epochs * TRACE_TOKENS, int(share * OUTPUT_TOKENS["hints"])))
        if memory and cfg.memory.experience == "paper_synthetic":
            n = tokens(benchmark.coder_messages(p, None))
            out.append((cfg.memory.learner_model, "learner", n, OUTPUT_TOKENS["attempt"]))
            out.append((cfg.memory.learner_model, "learner", n + OUTPUT_TOKENS["attempt"]
                        + len(p.reference_code) // CHARS_PER_TOKEN, OUTPUT_TOKENS["hints"]))
    return out


def estimate(cfg: Any, problems: list) -> tuple[float, float, dict[str, int]]:
    cost, seconds, volume = 0.0, 0.0, {"input": 0, "output": 0}
    for model, _, n_in, n_out in calls(cfg, problems):
        if model.get("reasoning_effort") or (model.get("params") or {}).get("reasoning_effort") or \
                "gemini-2.5" in str(model.get("model")):
            n_out += REASONING_TOKENS
        volume["input"] += n_in
        volume["output"] += n_out
        price = model.get("price") or {}
        cost += (n_in * price.get("input", 0.0) + n_out * price.get("output", 0.0)) / 1e6
        if "vllm" not in str(model.get("_target_")):
            seconds += n_out / TOKENS_PER_S / max(1, int(model.get("concurrency") or 1))
    return cost, seconds, volume


def main() -> None:
    overrides = sys.argv[1:] or ["experiment=paper_main"]
    experiment = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
    total_cost = total_s = 0.0
    print(f"{'run':<44}{'input Mtok':>11}{'output Mtok':>12}{'cost USD':>10}{'API hours':>10}")
    for sweep in experiment_sweep(experiment):
        cfg = compose_config(*overrides, *sweep)
        problems = build_benchmark(cfg.dataset).select()
        cost, seconds, volume = estimate(cfg, problems)
        name = f"{cfg.model.name}__{cfg.memory.name}__s{cfg.seed}"
        print(f"{name:<44}{volume['input'] / 1e6:>11.2f}{volume['output'] / 1e6:>12.2f}{cost:>10.2f}"
              f"{seconds / 3600:>10.1f}")
        total_cost, total_s = total_cost + cost, total_s + seconds
    print(f"{'total':<44}{'':>23}{total_cost:>10.2f}{total_s / 3600:>10.1f}")


if __name__ == "__main__":
    main()
