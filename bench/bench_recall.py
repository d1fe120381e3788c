"""Retrieval quality on DS-1000: does the KB search find the documentation a problem's reference solution uses?

    python bench/bench_recall.py --out results/bench/recall.json            # every arm, prompt and agent queries
    python bench/bench_recall.py --embedders static --agent-problems 0      # one embedder, prompt queries only
    python bench/bench_recall.py --embedders minilm,minilm:all              # dense over overviews vs every chunk
    python bench/bench_recall.py --sweep                                    # hybrid's fusion settings too
    python bench/bench_recall.py memory.kb.exclude='[tensorflow.raw_ops.*]' # any config override of the KB
    python bench/bench_recall.py --embedders minilm --agent-problems 0 --drafts results/gate_tune100/qwen2.5-coder-0.5b__none__s0 memory.kb.max_chunks=600

Labels: the documented qualified names each reference solution uses (`spark_eval/memory/docs/apilabels.py`, static
analysis of the reference in its code context); problems without a label are left out and counted. A hit is
relevant when its chunk documents a labelled name (any of its sections). Per arm and problem, over the 10 best
hits (ties by id, as the memory ranks them):

- recall@k: the share of the problem's labels documented among the first k hits (a problem with 3 labels
  reaches at most 1/3 at k = 1), averaged over problems;
- mrr: 1 / the rank of the first relevant hit (0 when none is in the first 10), averaged.

Arms: `bm25` (BM25 only), `dense-<embedder>` (cosine only) and `hybrid-<embedder>` (both, reciprocal-rank fusion
with the configured rrf_k, candidates and dense weight: what the memory searches); `<embedder>-all` when every
chunk has a vector (`memory.kb.dense=all`) rather than each object's overview (the default). Queries: the
problem's statement as `raw_rag` sends it (`prompt_query`; `--raw-prompt`: the prompt's first 2,000 characters,
as raw_rag sent it before), filtered to the problem's library, for every labelled problem; and, on a
stratified subset (`--agent-problems`), the agent's searches: its planned queries (the embedded agent model, through
the response cache) and the problem's statement, each searched in the libraries the agent would search, merged by
summed scores (the statement's weighted) as the agent merges them; beside them the planned queries alone, and the statement alone, on the same
subset. With `--drafts <a finished memory=none run>`, on that run's labelled problems: the documented APIs each
problem's draft (the run's code) uses, read as a reference is labelled, shown first (at most `max_items // 2`, as
memory=spark_drafted shows them), then the statement's hybrid hits; beside it the statement's hits alone. Each
embedder's KB is built first if it is not in the cache
(MiniLM: about 15-20 minutes for the full KB on 2 cores; the static embedder: under a minute).
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.data.ds1000 import read_dataset
from spark_eval.models.pool import ModelPool
from spark_eval.memory.agent import (PLAN_SCHEMA, STATEMENT_CHARS, STATEMENT_WEIGHT, interpret_plan, plan_messages,
                                     prompt_query, search_libraries)
from spark_eval.memory.docs.apilabels import ApiNames, api_labels
from spark_eval.memory.index import Hit, HybridIndex
from spark_eval.memory.docs.kb import load_api_names, load_knowledge_base
from spark_eval.models.structured import ask_json
from spark_eval.records.run import RunFiles
from spark_eval.types import LIBRARIES, Problem

DEPTH = 10
CUTS = (1, 5, 10)
AGENT_CHARS = 4000  # what the agent reads of the problem (RetrievalAgent.problem_chars)
SWEEP = {"rrf_k": (20, 60), "candidates": (100, 200), "dense_weight": (1.0, 2.0, 3.0)}


def qualname(chunk_id: str) -> str:
    """The documented name of a chunk from its id, `doc:<module>:<qualname>#<section>[/p<k>]`."""
    return chunk_id.split(":", 2)[2].split("#", 1)[0]


def scores(ranked: Sequence[str], labels: frozenset[str]) -> dict[str, float]:
    """recall@1/5/10 and reciprocal rank of one problem's ranked chunk ids against its labels."""
    names = [qualname(i) for i in ranked[:DEPTH]]
    found = {f"recall@{k}": len(labels.intersection(names[:k])) / len(labels) for k in CUTS}
    first = next((rank for rank, name in enumerate(names, 1) if name in labels), None)
    return {**found, "mrr": 1.0 / first if first else 0.0}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = [f"recall@{k}" for k in CUTS] + ["mrr"]
    return {**{key: round(float(np.mean([r[key] for r in rows])), 4) if rows else None for key in keys},
            "n": len(rows)}


class Arm:
    """One way of searching: a mode over one KB index (its embedder for the query vectors)."""

    def __init__(self, name: str, index: HybridIndex, vectors: dict[str, np.ndarray], mode: str) -> None:
        self.name, self.index, self.vectors, self.mode = name, index, vectors, mode

    def ranked(self, queries: Sequence[str], libraries: Sequence[str] | None,
               weights: Sequence[float] | None = None) -> list[str]:
        """The best DEPTH chunk ids over the queries: each searched in `libraries` (all of them when that finds
        nothing), the hits merged by the sum of their scores, each query's times its weight (1 unless given), as
        the agent merges its searches' hits."""
        total: dict[str, float] = {}
        for query, weight in zip(queries, weights or [1.0] * len(queries)):
            hits = self.index.search(query, self.vectors.get(query), k=DEPTH, libraries=libraries, mode=self.mode)
            if not hits and libraries is not None:
                hits = self.index.search(query, self.vectors.get(query), k=DEPTH, mode=self.mode)
            for hit in hits:
                total[hit.id] = total.get(hit.id, 0.0) + weight * hit.score
        return [i for i, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:DEPTH]]


def evaluate(arms: list[Arm], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Each arm's mean scores over the cases, overall and per library."""
    table: dict[str, Any] = {"arms": {}, "by_library": {}}
    for arm in arms:
        rows = [(case["library"], scores(arm.ranked(case["queries"], case["libraries"], case.get("weights")),
                                         case["labels"]))
                for case in cases]
        table["arms"][arm.name] = mean_scores([r for _, r in rows])
        table["by_library"][arm.name] = {lib: mean_scores([r for l, r in rows if l == lib])
                                         for lib in LIBRARIES if any(l == lib for l, _ in rows)}
    return table


def prompt_cases(problems: Sequence[Problem], labels: dict[int, frozenset[str]], raw: bool) -> list[dict[str, Any]]:
    """raw RAG's query for each problem: its statement (`prompt_query`), or with `raw` its first 2,000 characters."""
    return [{"problem_id": p.problem_id, "library": p.library, "labels": labels[p.problem_id],
             "queries": [p.prompt[:STATEMENT_CHARS] if raw else prompt_query(p.prompt)], "libraries": [p.library]}
            for p in problems]


async def agent_cases(cfg: Any, problems: Sequence[Problem], labels: dict[int, frozenset[str]]) -> list[dict[str, Any]]:
    """The agent's planned queries for each problem (a problem whose plan is unusable is left out, and counted)."""
    pool = ModelPool()
    model = pool.get(cfg.memory.agent_model)
    cases = []
    try:
        for p in problems:
            text = p.prompt[:AGENT_CHARS]
            plan = await ask_json(model, plan_messages(text), interpret_plan, PLAN_SCHEMA,
                                  int(cfg.memory.retrieval.max_tokens))
            if plan.value is None:
                continue
            cases.append({"problem_id": p.problem_id, "library": p.library, "labels": labels[p.problem_id],
                          "queries": plan.value["queries"], "statement": prompt_query(p.prompt),
                          "libraries": search_libraries(plan.value["library"], text, p.library)})
    finally:
        pool.close()
    print(f"agent plans: {len(cases)} usable of {len(problems)}")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default="minilm,static",
                        help="conf/embedder names, comma-separated; `<name>:<dense>` sets memory.kb.dense "
                             "(all, overviews)")
    parser.add_argument("--agent-problems", type=int, default=28, help="stratified subset for the agent's queries")
    parser.add_argument("--sweep", action="store_true",
                        help="hybrid over rrf_k x candidates x dense weight (first embedder)")
    parser.add_argument("--raw-prompt", action="store_true",
                        help="query with the prompt's first 2,000 characters instead of its statement (prompt_query)")
    parser.add_argument("--drafts", type=Path, help="a finished memory=none run: its drafts' APIs, then the statement")
    parser.add_argument("--out", type=Path, help="write the tables as JSON here")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. memory.kb.exclude=[...]")
    args = parser.parse_args()
    base = compose_config("memory=spark", *args.overrides)
    problems = read_dataset(base.dataset)
    names = ApiNames(load_api_names(base.memory.kb))
    labels = {p.problem_id: frozenset(api_labels(p, names)) for p in problems}
    labelled = [p for p in problems if labels[p.problem_id]]
    print(f"{len(labelled)} of {len(problems)} problems have at least one API label")
    subset_cfg = compose_config("memory=spark", f"dataset.limit={args.agent_problems}", *args.overrides)
    subset = [p for p in build_benchmark(subset_cfg.dataset).select() if labels[p.problem_id]] \
        if args.agent_problems else []
    agent = asyncio.run(agent_cases(base, subset, labels)) if subset else []
    cases = prompt_cases(labelled, labels, args.raw_prompt)
    merged = [{**c, "queries": [*c["queries"], c["statement"]],  # what the agent searches, weighted as it weighs them
               "weights": [1.0] * len(c["queries"]) + [STATEMENT_WEIGHT]} for c in agent]
    subset_ids = {c["problem_id"] for c in agent}
    paired = [c for c in cases if c["problem_id"] in subset_ids]

    arms, figures = [], {}
    for n, spec in enumerate(args.embedders.split(",")):
        embedder_name, _, dense = spec.partition(":")
        name = f"{embedder_name}-{dense}" if dense else embedder_name
        cfg = compose_config("memory=spark", f"embedder@memory.embedder={embedder_name}", *args.overrides,
                             *([f"memory.kb.dense={dense}"] if dense else []))
        embedder = instantiate(cfg.memory.embedder)
        load_knowledge_base(cfg.memory.kb, embedder).store.close()  # built first when it is not in the cache
        started = time.monotonic()
        kb = load_knowledge_base(cfg.memory.kb, embedder)
        done = kb.store.get_meta("complete")
        figures[name] = {"embedder": embedder.name, "dense": done.get("dense", "all"), "chunks": done["total"],
                         "embedded": done.get("embedded", done["total"]), "build_s": _build_s(done),
                         "open_s": round(time.monotonic() - started, 2)}
        queries = sorted({q for c in cases + merged for q in c["queries"]})
        started = time.monotonic()
        vectors = dict(zip(queries, embedder.embed(queries)))
        figures[name]["query_embed_ms"] = round(1000 * (time.monotonic() - started) / len(queries), 2)
        if n == 0:
            arms.append(Arm("bm25", kb.index, vectors, "bm25"))
        arms += [Arm(f"dense-{name}", kb.index, vectors, "dense"), Arm(f"hybrid-{name}", kb.index, vectors, "hybrid")]
        if args.sweep and n == 0:
            arms += _sweep_arms(name, kb.index, vectors)

    result = {"labelled": len(labelled), "problems": len(problems), "depth": DEPTH, "kb": figures,
              **evaluate(arms, cases),
              "agent_subset": {"n": len(agent), "queries": {"agent": evaluate(arms, merged)["arms"],
                                                            "plan": evaluate(arms, agent)["arms"],
                                                            "prompt": evaluate(arms, paired)["arms"]}}}
    if args.drafts:
        hybrid = next(arm for arm in arms if arm.name.startswith("hybrid-"))
        result["drafts"] = draft_arms(hybrid, args.drafts, {p.problem_id: p for p in problems}, labels, names,
                                      int(base.memory.retrieval.max_items) // 2)
    print_table("prompt queries, every labelled problem", result["arms"])
    if agent:
        print_table(f"the agent's searches (its plan's queries and the statement), {len(agent)} problems",
                    result["agent_subset"]["queries"]["agent"])
        print_table(f"the agent's planned queries alone, {len(agent)} problems", result["agent_subset"]["queries"]["plan"])
        print_table(f"prompt queries, the same {len(paired)} problems", result["agent_subset"]["queries"]["prompt"])
    if args.drafts:
        print_table(f"the drafts of {args.drafts} ({hybrid.name})", result["drafts"])
    for name, kb in figures.items():
        print(f"{name}: {kb['embedder']}, {kb['embedded']} of {kb['chunks']} chunks embedded, built in "
              f"{kb['build_s']} s, opened in {kb['open_s']} s, {kb['query_embed_ms']} ms per query embedding")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"-> {args.out}")


def draft_arms(arm: Arm, run: Path, problems: dict[int, Problem], labels: dict[int, frozenset[str]],
               names: ApiNames, first: int) -> dict[str, Any]:
    """On the labelled problems of `run` (memory=none): the statement's hits alone; the documented APIs its draft
    uses, then those hits (the draft's first `first`, as the agent shows them); the draft's APIs alone."""
    rows: dict[str, list[dict[str, float]]] = {"statement": [], "draft APIs, then statement": [], "draft APIs": []}
    for record in RunFiles(run).records:
        problem = problems[record.problem_id]
        wanted = labels[problem.problem_id]
        if record.epoch or record.repeat or not wanted:
            continue
        drafted = [f"doc:{n.split('.')[0]}:{n}#overview"
                   for n in api_labels(replace(problem, reference_code=record.code or ""), names)]
        searched = arm.ranked([prompt_query(problem.prompt)], [problem.library])
        merged = drafted[:first] + [i for i in searched if i not in drafted[:first]]
        for name, ranked in (("statement", searched), ("draft APIs, then statement", merged), ("draft APIs", drafted)):
            rows[name].append(scores(ranked, wanted))
    return {name: mean_scores(found) for name, found in rows.items()}


def _sweep_arms(name: str, index: HybridIndex, vectors: dict[str, np.ndarray]) -> list[Arm]:
    arms = []
    for rrf_k, candidates, weight in itertools.product(*SWEEP.values()):
        tuned = copy.copy(index)  # the same structures, fused with other settings
        tuned.rrf_k, tuned.candidates, tuned.dense_weight = rrf_k, candidates, weight
        arms.append(Arm(f"hybrid-{name}-k{rrf_k}-c{candidates}-w{weight}", tuned, vectors, "hybrid"))
    return arms


def _build_s(done: dict[str, Any]) -> float | None:
    parts = [done.get(key) for key in ("walk_s", "embed_s", "index_s")]
    return round(sum(p for p in parts if p is not None), 1) if done.get("walk_s") is not None else None


def print_table(title: str, arms: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'arm':<34}{'recall@1':>9}{'recall@5':>9}{'recall@10':>10}{'mrr':>7}{'n':>6}")
    for name, row in arms.items():
        print(f"{name:<34}{row['recall@1']:>9.3f}{row['recall@5']:>9.3f}{row['recall@10']:>10.3f}{row['mrr']:>7.3f}"
              f"{row['n']:>6}")


if __name__ == "__main__":
    main()
