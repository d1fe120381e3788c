"""Build the full documentation KB into an empty cache folder and print where the time goes, then open it.

    python bench/bench_kb.py                                   # memory=spark's KB, its default embedder
    python bench/bench_kb.py embedder@memory.embedder=minilm   # any config override (the transformer embedder)
    python bench/bench_kb.py --fresh-embedder                  # also extract/distil the embedder from nothing
    python bench/bench_kb.py memory.kb.cache_dir=<folder>      # build there instead of a temporary folder

Prints the embedder's set-up (distillation, when `--fresh-embedder`), walk, embed and index seconds as the
build records them, chunks per library, and the time a memory run then takes to open the built KB (a second
`load_knowledge_base`, as `SparkMemory.prepare` calls it). A folder given with `memory.kb.cache_dir` is kept;
a KB already built there is loaded, not rebuilt (the figures printed are then its first build's).
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.memory.docs.kb import load_knowledge_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-embedder", action="store_true",
                        help="put the embedder's model folder in the temporary folder too (time its distillation)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. embedder@memory.embedder=minilm")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-kb-") as scratch:
        overrides = list(args.overrides)
        if not any(o.startswith("memory.kb.cache_dir=") for o in overrides):
            overrides.append(f"memory.kb.cache_dir={Path(scratch) / 'kb'}")
        if args.fresh_embedder:
            overrides.append(f"memory.embedder.model_dir={Path(scratch) / 'models'}")
        cfg = compose_config("memory=spark", *overrides)
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start (other work slows every "
              f"figure); KB into {cfg.memory.kb.cache_dir}")
        started = time.monotonic()
        embedder = instantiate(cfg.memory.embedder)
        embedder.embed(["warm up"])  # extracts, distils or loads the model
        ready = time.monotonic() - started
        kb = load_knowledge_base(cfg.memory.kb, embedder)
        built = time.monotonic() - started
        done = kb.store.get_meta("complete")
        kb.store.close()
        started = time.monotonic()
        again = load_knowledge_base(cfg.memory.kb, embedder)
        opened = time.monotonic() - started
        again.store.close()
    print(f"embedder {embedder.name}: ready in {ready:.1f} s")
    print(f"{'library':<12}{'chunks':>8}")
    for library, count in done["chunks_by_library"].items():
        print(f"{library:<12}{count:>8}")
    print(f"{'total':<12}{done['total']:>8}  hash {done['hash'][:16]}")
    print(f"build: walk {done['walk_s']} s, embed {done['embed_s']} s, index {done.get('index_s', '?')} s; "
          f"embedder and build {built:.1f} s in all")
    print(f"open the built KB: {opened:.2f} s")


if __name__ == "__main__":
    main()
