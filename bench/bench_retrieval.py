"""Hybrid retrieval on this machine: embedding throughput, index build time, query embedding and search latency.

    python bench/bench_retrieval.py                            # ~35,000 docstring chunks of the installed libraries
    python bench/bench_retrieval.py --chunks kb_chunks.jsonl   # a documentation knowledge base: {id, library, text}
    python bench/bench_retrieval.py --docs 3000 --queries 100  # a quick look

Without `--chunks`, the documentation is the docstrings of numpy, scipy, pandas, sklearn, torch and matplotlib
as installed here, cut at paragraph breaks into chunks of at most 800 characters. 1,000 synthetic insights
(Pandas/12-style origin families) are added either way. Everything is embedded with the embedded MiniLM model
(extracted into the project cache). Queries are DS-1000 prompts: the first 400 characters (what raw RAG
sends) and the first sentence (like a planned search query), each with the problem's library and, for
insights, its origin family excluded, as the runner asks. Search latency excludes the query's embedding,
which is timed separately, one query at a time.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import os
import pkgutil
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from spark_eval.config import compose_config
from spark_eval.data.ds1000 import read_dataset
from spark_eval.memory.embed import MiniLMEmbedder
from spark_eval.memory.index import HybridIndex, IndexItem

LIBRARIES = {"numpy": "Numpy", "scipy": "Scipy", "pandas": "Pandas", "sklearn": "Sklearn", "torch": "Pytorch",
             "matplotlib": "Matplotlib"}
SKIPPED_MODULES = {"tests", "testing", "conftest", "setup", "backends"}
CHUNK_CHARS = 800
ADVICE = ["prefer {f} over a Python loop", "{f} returns a copy, assign the result back",
          "check the dtype before calling {f}", "{f} keeps the index; reset it before comparing",
          "pass axis explicitly to {f}", "{f} broadcasts, so reshape the operand first"]


def docstring_chunks(limit: int, seed: int) -> list[dict[str, str]]:
    """Up to `limit` chunks of the public docstrings of the six installed libraries, shared out evenly among them."""
    by_library = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for package, library in LIBRARIES.items():
            chunks = [{"id": f"{name}#{i}", "library": library, "text": f"{name}\n{piece}"}
                      for name, doc in package_docs(package) for i, piece in enumerate(split_paragraphs(doc))]
            random.Random(seed).shuffle(chunks)
            by_library.append(chunks)
    taken = [chunk for group in itertools.zip_longest(*by_library) for chunk in group if chunk is not None]
    return taken[:limit]


def package_docs(package: str) -> Iterator[tuple[str, str]]:
    """(name, docstring) of everything public the package defines, each under the first public name found."""
    seen: set[int] = set()
    for module in public_modules(package):
        for name, obj, doc in documented(module, package):
            if id(obj) not in seen:
                seen.add(id(obj))
                yield name, doc


def public_modules(name: str) -> Iterator[Any]:
    """The module and its public submodules, recursively; those that fail to import are skipped."""
    try:
        module = importlib.import_module(name)
    except (Exception, SystemExit):  # optional dependencies, other platforms
        return
    yield module
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if not info.name.startswith("_") and info.name not in SKIPPED_MODULES:
            yield from public_modules(f"{name}.{info.name}")


def documented(module: Any, package: str) -> Iterator[tuple[str, Any, str]]:
    """(public name, object, docstring) of the package's classes and functions in the module, and their methods."""
    for name, obj in list(vars(module).items()):
        defined_in = getattr(obj, "__module__", None) or ""
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)) or \
                defined_in.split(".")[0] != package:
            continue
        qualified = f"{module.__name__}.{name}"
        yield from _with_doc(qualified, obj)
        if inspect.isclass(obj):
            for member, value in list(vars(obj).items()):
                if not member.startswith("_"):
                    yield from _with_doc(f"{qualified}.{member}", value)


def _with_doc(name: str, obj: Any) -> Iterator[tuple[str, Any, str]]:
    try:
        doc = inspect.getdoc(obj)
    except Exception:  # objects whose docstring lookup raises
        return
    if doc and len(doc) > 40:
        yield name, obj, doc


def split_paragraphs(doc: str) -> list[str]:
    """Paragraphs packed into pieces of at most CHUNK_CHARS characters (a longer paragraph is cut)."""
    pieces, current = [], ""
    for paragraph in re.split(r"\n\s*\n", doc):
        for start in range(0, len(paragraph), CHUNK_CHARS):
            part = paragraph[start:start + CHUNK_CHARS]
            if current and len(current) + len(part) + 2 > CHUNK_CHARS:
                pieces.append(current)
                current = ""
            current = f"{current}\n\n{part}" if current else part
    return pieces + [current] if current else pieces


def read_chunks(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


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
    parser.add_argument("--chunks", type=Path, help="JSON lines with at least id, library, text")
    parser.add_argument("--docs", type=int, default=35_000, help="docstring chunks when --chunks is not given")
    parser.add_argument("--insights", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    cfg = compose_config()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start (other work slows every figure)")

    start = time.perf_counter()
    rows = read_chunks(args.chunks) if args.chunks else docstring_chunks(args.docs, args.seed)
    docs = [IndexItem(str(r["id"]), "doc", r["library"], (), r["text"]) for r in rows]
    items = docs + synthetic_insights(docs, args.insights, args.seed)
    print(f"corpus: {len(docs)} doc chunks ({np.mean([len(d.text) for d in docs]):.0f} chars on average) "
          f"+ {len(items) - len(docs)} insights, gathered in {time.perf_counter() - start:.1f} s")

    embedder = MiniLMEmbedder(str(Path(cfg.paths.cache) / "models"), threads=args.threads)
    embedder.embed(["warm up"])
    vectors, took = embed_all(embedder, [item.text for item in items])
    print(f"embedding ({embedder.name}, {args.threads} threads, batch {embedder.batch_size}): {len(items)} texts "
          f"in {took:.1f} s = {len(items) / took:.1f} texts/s")

    start = time.perf_counter()
    index = HybridIndex(items, vectors)
    print(f"index build (bm25s + dense matrix): {time.perf_counter() - start:.2f} s")
    run_queries(index, embedder, args.queries, cfg)


def embed_all(embedder: MiniLMEmbedder, texts: list[str], step: int = 4000) -> tuple[np.ndarray, float]:
    """All the vectors and the seconds they took, reporting progress (the whole corpus takes a while on a CPU)."""
    parts, start = [], time.perf_counter()
    for done in range(step, len(texts) + step, step):
        parts.append(embedder.embed(texts[done - step:done]))
        rate = min(done, len(texts)) / (time.perf_counter() - start)
        print(f"  {min(done, len(texts))}/{len(texts)} embedded, {rate:.1f} texts/s so far", flush=True)
    return np.concatenate(parts), time.perf_counter() - start


def run_queries(index: HybridIndex, embedder: MiniLMEmbedder, n: int, cfg: Any) -> None:
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
