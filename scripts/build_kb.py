"""Build (or load) the documentation knowledge base the spark memories use, and print its figures.

    python scripts/build_kb.py                                   # all seven libraries, as memory=spark uses it
    python scripts/build_kb.py memory.kb.max_chunks=600          # any config override, e.g. the demo's cap
    python scripts/build_kb.py --walk-only --out chunks.jsonl    # only walk and chunk (and write the chunks)

The KB lands in `memory.kb.cache_dir` (results/.cache/kb), keyed by builder version, the library versions of
the grading environment, the embedder and the cap; a second run with the same inputs loads it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.memory.docs.kb import load_knowledge_base
from spark_eval.memory.docs.walk import BUILDER_VERSION, chunks_hash, walk_library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--walk-only", action="store_true", help="walk and chunk; no store, no embeddings")
    parser.add_argument("--out", type=Path, help="with --walk-only: write every chunk as a JSON line here")
    parser.add_argument("overrides", nargs="*", help="config overrides (memory.kb.libraries=[Numpy], ...)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config("memory=spark", *args.overrides)
    if args.walk_only:
        walk(cfg.memory.kb, args.out)
        return
    started = time.monotonic()
    embedder = instantiate(cfg.memory.embedder)
    kb = load_knowledge_base(cfg.memory.kb, embedder)
    done = kb.store.get_meta("complete")
    print(f"builder {BUILDER_VERSION}, embedder {embedder.name}")
    for library, count in kb.chunks_by_library.items():
        print(f"{library:<12}{count:>8}")
    print(f"{'total':<12}{done['total']:>8}  hash {kb.hash[:16]}")
    print(f"{done.get('embedded', done['total'])} chunks embedded (memory.kb.dense={done.get('dense', 'all')})")
    print(f"build: walk {done['walk_s']} s, embed {done['embed_s']} s, index {done.get('index_s', '?')} s; "
          f"this load {time.monotonic() - started:.1f} s ({kb.store.path})")


def walk(kb_cfg, out: Path | None) -> None:
    print(f"{'library':<12}{'version':<14}{'objects':>8}{'chunks':>8}{'walk s':>9}  hash")
    total, started = 0, time.monotonic()
    with out.open("w") if out else contextlib.nullcontext() as sink:
        for library in kb_cfg.libraries:
            begun = time.monotonic()
            chunks = walk_library(kb_cfg.python, library)
            version = chunks[0].version if chunks else "?"
            objects = len({chunk.qualname for chunk in chunks})
            print(f"{library:<12}{version:<14}{objects:>8}{len(chunks):>8}{time.monotonic() - begun:>9.1f}  "
                  f"{chunks_hash(chunks)[:16]}")
            total += len(chunks)
            for chunk in chunks if sink else ():
                sink.write(json.dumps(dataclasses.asdict(chunk)) + "\n")
    print(f"{'total':<34}{total:>8}{time.monotonic() - started:>9.1f}")


if __name__ == "__main__":
    main()
