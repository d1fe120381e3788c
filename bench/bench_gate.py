"""Candidate signals for Spark's gate: does a signal tell the problems the coder solves alone ("known": its answer
without memory passes) from the rest, before any advice is written?

    PYTHONPATH=. python bench/bench_gate.py results/local_study/qwen2.5-coder-0.5b__none__s0 \\
        --spark results/local_study/qwen2.5-coder-0.5b__spark__s0 --out results/bench/gate.json

On the no-memory run's problems (epoch 0, first answers, graded), per signal its AUROC for "known" (0.5: none):

- `self_assessed`: the probability the coder gives "yes" when asked, after the problem, whether it knows how to solve
  it without looking anything up (read off its logits by a `choices` request: nothing is generated; the embedded
  models answer it, through the response cache);
- `draft_mean_logprob`, `draft_min_logprob`: how sure the coder is of its own answer without memory (the no-memory
  run's reply, which at temperature 0 is the draft a gate would see): the mean and the lowest of its tokens'
  log-probabilities, teacher-forced (`ask_score`; the embedded models);
- from a Spark run's records of the same problems (`--spark`): the best raw dense and BM25 scores among the agent's
  hits, and the number of items shown.

With few known problems the AUROC is loose: its 95% interval (`stats/validity.py`: bootstrap over origin families,
as every AUROC of the report) is printed beside it.

A gate from another set: `--gate-from <json>` (this script's `--out` on a tuning set's no-memory run) takes the
threshold of `--gate-signal` from that set: the lowest value a known problem there has, so every problem the coder
solved alone there is left in silence (`memory=spark_gated`'s `memory.gate.threshold`). On this run it then counts,
offline, what that gate would do with the `--spark` run's outcomes: silent where the signal is at or above the
threshold (the no-memory outcome), Spark's outcome elsewhere; destroyed-known (known problems Spark fails that the
gate let it speak on) and rescued-unknown, beside Spark's own. Offline, the gated memory learns from all rounds'
attempts as the Spark run did; `memory=spark_gated` run for real learns from fewer.

    PYTHONPATH=. python bench/bench_gate.py results/gate_tune/<none run> --out results/bench/gate-tune.json
    PYTHONPATH=. python bench/bench_gate.py results/local_study/<none run> --spark results/local_study_v2/<spark run> \
        --gate-from results/bench/gate-tune.json --gate-signal draft_min_logprob
"""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.models.structured import ask_choices, ask_score
from spark_eval.records import GRADED
from spark_eval.records.run import RunFiles
from spark_eval.stats.validity import auroc, auroc_interval

QUESTION = ("Before you answer: are you sure you know how to solve this problem correctly without looking anything "
            "up? Reply with yes or no.")


class Coder:
    """The coder's model (`model=<name>`), loaded once, and each problem's no-memory conversation."""

    def __init__(self, model_name: str) -> None:
        cfg = compose_config(f"model={model_name}")
        self.benchmark = build_benchmark(cfg.dataset)
        self.problems = {p.problem_id: p for p in self.benchmark.problems()}
        self.model = instantiate(cfg.model)

    def messages(self, problem_id: int) -> list:
        return self.benchmark.coder_messages(self.problems[problem_id], None)


async def self_assessed(coder: Coder, problem_ids: list[int]) -> dict[int, float]:
    found = {}
    for pid in problem_ids:
        messages = coder.messages(pid)
        asked = [*messages[:-1], {"role": "user", "content": messages[-1]["content"] + "\n\n" + QUESTION}]
        reply = await ask_choices(coder.model, asked, "", ["yes", "no"])
        if reply.value is not None:
            found[pid] = reply.value["yes"]
    return found


async def draft_confidence(coder: Coder, replies: dict[int, str]) -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {"draft_mean_logprob": {}, "draft_min_logprob": {}}
    for pid, text in replies.items():
        reply = await ask_score(coder.model, coder.messages(pid), text)
        if reply.value:
            found["draft_mean_logprob"][pid] = float(np.mean(reply.value))
            found["draft_min_logprob"][pid] = float(np.min(reply.value))
    return found


def retrieval(spark_dir: Path) -> dict[str, dict[int, float]]:
    signals: dict[str, dict[int, float]] = {"max_dense": {}, "max_bm25": {}, "items_shown": {}}
    for record in RunFiles(spark_dir).records:
        rec = record.recommendation
        if record.epoch or record.repeat or rec is None:
            continue
        hits = [h for q in rec.trace.get("queries") or () for h in q.get("hits") or () if isinstance(h, dict)]
        signals["max_dense"][record.problem_id] = max([h.get("dense_score") or 0.0 for h in hits] or [0.0])
        signals["max_bm25"][record.problem_id] = max([h.get("bm25_score") or 0.0 for h in hits] or [0.0])
        signals["items_shown"][record.problem_id] = float(len(rec.items))
    return signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("none_run", type=Path, help="a finished memory=none run (which problems are known)")
    parser.add_argument("--spark", type=Path, help="a Spark run of the same problems (retrieval signals)")
    parser.add_argument("--model", default="local", help="the coder's model config (the self-assessed signal)")
    parser.add_argument("--gate-from", type=Path, help="a tuning set's --out: the gate's threshold is taken there")
    parser.add_argument("--gate-signal", default="draft_min_logprob")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    firsts = [r for r in RunFiles(args.none_run).records if r.epoch == 0 and r.repeat == 0 and r.status in GRADED]
    known = {r.problem_id: bool(r.passed) for r in firsts}
    family = {r.problem_id: tuple(r.origin_family) for r in firsts}
    ids = sorted(known)
    coder = Coder(args.model)
    signals = {"self_assessed": asyncio.run(self_assessed(coder, ids))}
    replies = {r.problem_id: r.completion.text if r.completion else "" for r in firsts}
    signals.update(asyncio.run(draft_confidence(coder, {i: t for i, t in replies.items() if t})))
    if args.spark:
        signals.update(retrieval(args.spark))
    table = {}
    for name, values in signals.items():
        shared = [i for i in ids if i in values]
        scores, labels = np.array([values[i] for i in shared]), np.array([known[i] for i in shared])
        low, high = auroc_interval(list(labels), list(scores), [family[i] for i in shared])
        table[name] = {"auroc_known": round(auroc(labels, scores), 3), "ci95": [round(low, 3), round(high, 3)],
                       "n": len(shared), "known": int(labels.sum()),
                       "mean_known": round(float(scores[labels].mean()), 3),
                       "mean_unknown": round(float(scores[~labels].mean()), 3)}
        print(f"{name:<14} AUROC for known {table[name]['auroc_known']:.3f} {table[name]['ci95']}  "
              f"({table[name]['known']} known of {len(shared)})")
    gated = None
    if args.gate_from:
        tuned = json.loads(args.gate_from.read_text())
        values, tuned_known = tuned["values"][args.gate_signal], tuned["known"]
        threshold = min(v for pid, v in values.items() if tuned_known[pid])
        gated = {"signal": args.gate_signal, "threshold": threshold, "tuned_on": str(tuned["none_run"]),
                 **offline_gate(signals[args.gate_signal], threshold, known, args.spark)}
        print(json.dumps(gated, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"none_run": str(args.none_run), "spark_run": str(args.spark) if args.spark else None,
                                        "signals": table, "gate": gated, "known": {str(i): known[i] for i in ids},
                                        "values": {name: {str(i): v for i, v in values.items()}
                                                   for name, values in signals.items()}}, indent=2) + "\n")


def offline_gate(values: dict[int, float], threshold: float, known: dict[int, bool], spark: Path | None) -> dict:
    """What a gate silent at and above `threshold` would do on these problems, with a Spark run's outcomes where it
    speaks: abstentions, and destroyed-known and rescued-unknown with and without the gate."""
    silent = {i for i, v in values.items() if v >= threshold}
    found: dict = {"problems": len(values), "silent": len(silent),
                   "silent_known": sum(1 for i in silent if known.get(i)), "known": sum(known.values())}
    if spark is None:
        return found
    outcome = {r.problem_id: bool(r.passed) for r in RunFiles(spark).records
               if r.epoch == 0 and r.repeat == 0 and r.status in GRADED}
    shared = [i for i in values if i in outcome and i in known]
    knowns, unknowns = [i for i in shared if known[i]], [i for i in shared if not known[i]]
    for name, speaks in (("spark", lambda i: True), ("gated", lambda i: i not in silent)):
        found[name] = {"destroyed_known": sum(1 for i in knowns if speaks(i) and not outcome[i]),
                       "rescued_unknown": sum(1 for i in unknowns if speaks(i) and outcome[i]),
                       "known": len(knowns), "unknown": len(unknowns)}
    return found


if __name__ == "__main__":
    main()
