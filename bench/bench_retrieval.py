"""Hybrid retrieval on this machine: embedding throughput, index build time, query embedding and search latency.

    python bench/bench_retrieval.py                                # the full documentation KB (memory=spark)
    python bench/bench_retrieval.py memory.kb.max_chunks=600       # the demo's capped KB
    python bench/bench_retrieval.py --queries 100                  # a quick look

The documentation is the knowledge base `memory=spark` uses (built and cached on first use, as
`scripts/build_kb.py` does); 1,000 synthetic insights (Pandas/12-style origin families) are added and embedded
with the same embedder (memory=spark's). Queries are DS-1000 prompts: the first 400 characters (what raw RAG
sends) and the first sentence (like a planned search query), each with the problem's library and, for
insights, its origin family excluded, as the runner asks. Search latency excludes the query's embedding,
which is timed separately, one query at a time.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
import time
from typing import Any, Callable

import numpy as np
from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data.ds1000 import read_dataset
from spark_eval.memory.embed import Embedder
from spark_eval.memory.index import HybridIndex, IndexItem
from spark_eval.memory.docs.kb import load_knowledge_base

ADVICE = ["prefer {f} over a Python loop", "{f} returns a copy, assign the result back",
          "check the dtype before calling {f}", "{f} keeps the index; reset it before comparing",
          "pass axis explicitly to {f}", "{f} broadcasts, so reshape the operand first"]


def synthetic_insights(docs: list[IndexItem], n: int, seed: int) -> list[IndexItem]:
    """Insight-like texts naming functions of the documentation, each from one or two origin families."""
    rng = random.Random(seed)
    names = [(item.library, item.text.split("\n", 1)[0]) for item in docs]
    insights = []
    for i in range(n):
        (library, function), advice = rng.choice(names), rng.choice(ADVICE)
        families = tuple(sorted({f"{library}/{rng.randrange(300)}" for _ in range(rng.randint(1, 2))}))
        text = f"When a problem asks about {function.rsplit('.', 1)[-1]}: {advice.format(f=function)}."
        insights.append(IndexItem(f"insight-{i}", "insight", library if rng.random() < 0.8 else None, families, text))
    return insights


def percentiles(seconds: list[float]) -> str:
    p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
    return f"p50 {p50:7.2f} ms   p95 {p95:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--insights", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. memory.kb.max_chunks=600")
    args = parser.parse_args()
    cfg = compose_config("memory=spark", *args.overrides)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start (other work slows every figure)")

    embedder = instantiate(cfg.memory.embedder)
    start = time.perf_counter()
    kb = load_knowledge_base(cfg.memory.kb, embedder)  # built once and cached: `scripts/build_kb.py` prints its figures
    opened = time.perf_counter() - start
    texts = {item.id: item.content for item in kb.store.items(kind="doc")}  # a saved index keeps no texts
    docs = [dataclasses.replace(item, text=texts[item.id]) for item in kb.index.items]
    doc_vectors = kb.index.vectors  # what the memory searches, already loaded
    print(f"knowledge base: {len(docs)} chunks ({np.mean([len(d.text) for d in docs]):.0f} chars on average), "
          f"opened in {opened:.1f} s")

    insights = synthetic_insights(docs, args.insights, args.seed)
    start = time.perf_counter()
    insight_vectors = embedder.embed([item.text for item in insights])
    took = time.perf_counter() - start
    print(f"embedding ({embedder.name}): {len(insights)} insights in {took:.1f} s = "
          f"{len(insights) / took:.1f} texts/s")

    start = time.perf_counter()
    index = HybridIndex(docs + insights, np.vstack([doc_vectors, insight_vectors]))
    print(f"index build over {len(index)} items (bm25s + dense matrix): {time.perf_counter() - start:.2f} s")
    run_queries(index, embedder, args.queries, cfg)


def run_queries(index: HybridIndex, embedder: Embedder, n: int, cfg: Any) -> None:
    """Embed each query alone, then time the searches the runner would make."""
    problems = read_dataset(cfg.dataset)
    problems = problems[:: max(1, len(problems) // n)][:n]
    long = [p.prompt.removeprefix("Problem:").strip()[:400] for p in problems]
    short = [re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0][:200] for text in long]
    embed_s, long_vectors = timed(lambda q: embedder.embed([q])[0], long)
    _, short_vectors = timed(lambda q: embedder.embed([q])[0], short)
    print(f"query embedding, one at a time ({n} prompts of 400 chars): {percentiles(embed_s)}")
    filters = [dict(libraries=[p.library], exclude_families=[f"{p.library}/{p.origin_family[1]}"]) for p in problems]
    cases = [("hybrid, library + family filter", long, long_vectors, "hybrid", filters),
             ("hybrid, no filter", long, long_vectors, "hybrid", [{}] * n),
             ("bm25 only, filtered", long, long_vectors, "bm25", filters),
             ("dense only, filtered", long, long_vectors, "dense", filters),
             ("hybrid, filtered, first sentence", short, short_vectors, "hybrid", filters)]
    for label, queries, vectors, mode, kwargs in cases:
        index.search(queries[0], vectors[0], mode=mode, **kwargs[0])  # first use builds the cached filter masks
        seconds, _ = timed(lambda i: index.search(queries[i], vectors[i], k=10, mode=mode, **kwargs[i]), range(n))
        print(f"search k=10, {label:<34} {percentiles(seconds)}")


def timed(call: Callable[[Any], Any], inputs: Any) -> tuple[list[float], list[Any]]:
    """Wall time of each call, and the results."""
    seconds, results = [], []
    for value in inputs:
        start = time.perf_counter()
        results.append(call(value))
        seconds.append(time.perf_counter() - start)
    return seconds, results


if __name__ == "__main__":
    main()
