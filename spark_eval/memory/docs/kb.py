"""The documentation knowledge base as the memory uses it: built once into a cached store and a saved index.

The cache key is (builder version, library versions in the grading environment, embedder, chunk limit, the chunks
left out), so a rebuild with the same inputs is skipped and gives the same hash. The build walks, chunks, embeds
and indexes, and saves the index beside the store (`kb-<key>.index/`), so a memory run opens it without
re-tokenising or re-reading vectors.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import logging
import time
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from spark_eval.types import LIBRARY_MODULES
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.docs.walk import BUILDER_VERSION, DocChunk, chunks_hash, library_versions, walk_library
from spark_eval.memory.embed import CachedEmbedder, Embedder
from spark_eval.memory.index import HybridIndex, IndexItem
from spark_eval.memory.store.base import EmbeddingStore, Item, ItemStore, MemoryStore
from spark_eval.memory.store.open import open_store
from spark_eval.records import write_json

log = logging.getLogger(__name__)

EMBED_BATCH = 512
DENSE_MODES = ("overviews", "all")


@dataclass
class KnowledgeBase:
    """The built KB: its store (items + embeddings), a hybrid index over it, its hash and chunk counts."""

    store: MemoryStore
    index: HybridIndex
    hash: str
    chunks_by_library: dict[str, int]
    embedder: str = ""
    """The embedder's full name (model and settings, e.g. `all-MiniLM-L6-v2/max128`)."""
    dense: str = "all"
    """Which chunks have vectors (`memory.kb.dense`)."""


@dataclass(frozen=True)
class ChunkFilter:
    """Which walked chunks the KB leaves out: names matching an `exclude` glob (`tensorflow.raw_ops.*`), and,
    when `signature_only` is False, overviews of objects without a docstring (a name and a signature)."""

    exclude: tuple[str, ...] = ()
    signature_only: bool = True

    @classmethod
    def of(cls, cfg: Any) -> "ChunkFilter":
        return cls(exclude=tuple(cfg.get("exclude") or ()), signature_only=bool(cfg.get("signature_only", True)))

    def keeps(self, chunk: DocChunk) -> bool:
        if not self.signature_only and is_signature_only(chunk):
            return False
        return not any(fnmatch.fnmatchcase(chunk.qualname, pattern) for pattern in self.exclude)

    def key(self) -> dict[str, Any] | None:
        """What the cache key holds of the filter (None when it keeps every chunk, as older keys did)."""
        return None if self == ChunkFilter() else {"exclude": list(self.exclude), "signature_only": self.signature_only}


def is_signature_only(chunk: DocChunk) -> bool:
    """An overview that is only the object's name and signature: the walk found no docstring."""
    return chunk.section == "overview" and "\n\n" not in chunk.text


def kb_key(versions: dict[str, str], embedder: str, max_chunks: int | None, chunks: ChunkFilter = ChunkFilter(),
           dense: str = "all") -> str:
    found = {"builder": BUILDER_VERSION, "versions": versions, "embedder": embedder, "max_chunks": max_chunks}
    if chunks.key() is not None:
        found["chunks"] = chunks.key()
    if dense != "all":  # KBs built before `dense` embedded every chunk, and keep their key
        found["dense"] = dense
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]


def _versions(cfg: Any) -> dict[str, str]:
    libraries = list(cfg.libraries)
    found = library_versions(cfg.python, [LIBRARY_MODULES.get(lib, lib) for lib in libraries])
    return {lib: found[LIBRARY_MODULES.get(lib, lib)] for lib in libraries}


def load_knowledge_base(cfg: Any, embedder: Embedder) -> KnowledgeBase:
    """The KB for `cfg.libraries` from `cfg.python`'s installed versions, built into `cfg.cache_dir` once."""
    libraries = list(cfg.libraries)
    dense = str(cfg.get("dense", "all"))
    if dense not in DENSE_MODES:
        raise MemoryConfigError(f"memory.kb.dense={dense!r} is not one of {DENSE_MODES}")
    versions = _versions(cfg)
    chunks = ChunkFilter.of(cfg)
    path = kb_path(cfg, embedder.name, versions)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):
        store = open_store(path)
        if store.get_meta("complete") is None:
            build_knowledge_base(store, cfg.python, libraries, embedder, cfg.max_chunks, versions,
                                 api_names_path(cfg.cache_dir, versions), chunks, dense)
        started = time.monotonic()
        index = open_index(store, embedder, int(cfg.rrf_k), int(cfg.candidates), float(cfg.dense_weight), dense)
    done = store.get_meta("complete")
    log.info("knowledge base %s: %d chunks, opened in %.1f s", path.name, len(index), time.monotonic() - started)
    return KnowledgeBase(store=store, index=index, hash=done["hash"], chunks_by_library=done["chunks_by_library"],
                         embedder=embedder.name, dense=dense)


def kb_path(cfg: Any, embedder: str, versions: dict[str, str] | None = None) -> Path:
    """The file the KB of `cfg` (with `embedder`'s vectors) is built into, and opened from once complete."""
    versions = versions if versions is not None else _versions(cfg)
    key = kb_key(versions, embedder, cfg.max_chunks, ChunkFilter.of(cfg), str(cfg.get("dense", "all")))
    return Path(cfg.cache_dir) / f"kb-{key}.sqlite"


def kb_complete(path: Path) -> bool:
    """Whether `path` holds a finished KB, read without writing (a dry run opens nothing for writing)."""
    if not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT 1 FROM meta WHERE key = 'complete'").fetchone() is not None
    except sqlite3.Error:
        return False


def index_path(store: ItemStore) -> Path:
    """Where a KB store's saved index lives: `kb-<key>.index/` beside `kb-<key>.sqlite`."""
    return Path(store.path).with_suffix(".index")


def open_index(store: ItemStore, embedder: Embedder, rrf_k: int, candidates: int,
               dense_weight: float = 1.0, dense: str = "all") -> HybridIndex:
    """The KB's saved index; made from the store (and saved) when it is missing, damaged or of an older format."""
    folder = index_path(store)
    try:
        return HybridIndex.load(folder, rrf_k=rrf_k, candidates=candidates, dense_weight=dense_weight)
    except (OSError, ValueError, KeyError) as e:
        if folder.exists():
            log.warning("knowledge base index %s cannot be opened (%s): making it again", folder.name, e)
    items = store.items(kind="doc")
    save_index(store, items, dense_vectors(items, embedder, store, dense))
    return HybridIndex.load(folder, rrf_k=rrf_k, candidates=candidates, dense_weight=dense_weight)


def save_index(store: ItemStore, items: Sequence[Item], vectors: np.ndarray) -> None:
    """Index the KB's chunks (BM25 over their texts, their vectors) and save it beside the store; the fusion
    settings are given when it is opened."""
    HybridIndex([IndexItem(id=i.id, kind="doc", library=i.library, families=(), text=i.content) for i in items],
                vectors).save(index_path(store))


def build_knowledge_base(store: MemoryStore, python: str, libraries: Sequence[str], embedder: Embedder,
                         max_chunks: int | None = None, versions: dict[str, str] | None = None,
                         api_path: Path | None = None, chunks_filter: ChunkFilter = ChunkFilter(),
                         dense: str = "all") -> dict[str, Any]:
    """Walk each library in the grading interpreter, store its chunks (those `chunks_filter` keeps), embed them
    (`dense`: which of them, see `embed_text`) and save the index; resumable (chunks are upserted, embeddings
    cached), and marked complete with its hash and its timings only at the end. `versions`: the libraries'
    versions when the caller has read them; `api_path`: where to keep every walked API name too (a capped or
    filtered KB stores only some of them)."""
    started = time.monotonic()
    counts, hashes, names = {}, [], {}
    for library in libraries:
        every = walk_library(python, library, (versions or {}).get(library))
        names[library] = sorted({c.qualname for c in every})
        chunks = central([c for c in every if chunks_filter.keeps(c)], max_chunks)
        store.put_items([doc_item(c) for c in chunks])
        counts[library] = len(chunks)
        hashes.append(chunks_hash(chunks))
        log.info("knowledge base: %s %s, %d chunks", library, chunks[0].version if chunks else "?", len(chunks))
    if api_path is not None:
        write_json(api_path, names)
    walked = time.monotonic()
    items = store.items(kind="doc")
    vectors = dense_vectors(items, embedder, store, dense, progress=True)
    embedded = time.monotonic()
    save_index(store, items, vectors)
    which = [] if dense == "all" else [f"dense={dense}"]  # which chunks have vectors changes what is found
    digest = hashlib.sha256("\n".join([BUILDER_VERSION, embedder.name, *which, *hashes]).encode()).hexdigest()
    done = {"hash": digest, "chunks_by_library": counts, "total": sum(counts.values()), "embedder": embedder.name,
            "dense": dense, "embedded": int(np.count_nonzero(np.any(vectors != 0, axis=1))),
            "walk_s": round(walked - started, 1), "embed_s": round(embedded - walked, 1),
            "index_s": round(time.monotonic() - embedded, 1)}
    store.set_meta("complete", done)
    return done


def api_names_path(cache_dir: str | Path, versions: dict[str, str]) -> Path:
    key = hashlib.sha256(json.dumps({"builder": BUILDER_VERSION, "versions": versions}, sort_keys=True).encode())
    return Path(cache_dir) / f"api-{key.hexdigest()[:16]}.json"


def load_api_names(cfg: Any) -> dict[str, frozenset[str]]:
    """Every documented public name of each of `cfg.libraries` (`numpy.argsort`, `pandas.DataFrame.groupby`)
    as installed in `cfg.python`: kept beside the KB when it was built, else walked once and kept."""
    versions = _versions(cfg)
    path = api_names_path(cfg.cache_dir, versions)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_suffix(".lock")):
            if not path.exists():
                write_json(path, {lib: sorted({c.qualname for c in walk_library(cfg.python, lib, versions[lib])})
                                        for lib in versions})
    return {lib: frozenset(found) for lib, found in json.loads(path.read_text()).items()}


def central(chunks: list[DocChunk], limit: int | None) -> list[DocChunk]:
    """The `limit` most central chunks (shallowest names first, overviews before sections), in walk order;
    all of them when `limit` is None. A capped KB keeps `numpy.sum` before `numpy.ma.extras.ediff1d`."""
    if limit is None or limit >= len(chunks):
        return chunks
    rank = sorted(range(len(chunks)), key=lambda i: (chunks[i].qualname.count("."), chunks[i].section != "overview",
                                                     chunks[i].id))
    return [chunks[i] for i in sorted(rank[:limit])]


def doc_item(chunk: DocChunk) -> Item:
    title = chunk.qualname if chunk.section == "overview" else f"{chunk.qualname} ({chunk.section})"
    return Item(id=chunk.id, kind="doc", library=chunk.library, title=title, content=chunk.text,
                meta={"qualname": chunk.qualname, "version": chunk.version, "section": chunk.section,
                      "objtype": chunk.objtype})


def embed_text(item: Item, dense: str) -> str | None:
    """What the dense side embeds of a chunk, or None when the chunk gets no vector (BM25 alone finds it).

    `all`: every chunk's text. `overviews`: only each object's overview, as its name and summary without the
    signature (a long signature filled MiniLM's 128 word pieces), so the dense list ranks objects and BM25
    every section: on bench/bench_recall.py over the full KB a higher hybrid recall@10 than embedding every
    chunk (0.274 vs 0.255) though a lower MRR (0.222 vs 0.252), from about a third of the chunks and shorter
    texts (the build in minutes, not 20).
    """
    if dense == "all":
        return item.content
    if item.meta.get("section") != "overview":
        return None
    _, _, summary = item.content.partition("\n\n")
    return f"{item.meta['qualname']}\n\n{summary}" if summary else str(item.meta["qualname"])


def dense_vectors(items: Sequence[Item], embedder: Embedder, store: EmbeddingStore, dense: str,
                  progress: bool = False) -> np.ndarray:
    """One row per item: the vector of its `embed_text` (cached in the store), zeros when it has none. Texts are
    embedded shortest first, so a batch pads little."""
    texts = [(row, text) for row, item in enumerate(items) if (text := embed_text(item, dense)) is not None]
    texts.sort(key=lambda pair: len(pair[1]))
    vectors = np.zeros((len(items), embedder.dim), dtype=np.float32)
    cached = CachedEmbedder(embedder, store)
    for start in tqdm(range(0, len(texts), EMBED_BATCH), desc=f"embedding {len(texts)} of {len(items)} chunks",
                      unit="batch", disable=not progress):
        batch = texts[start : start + EMBED_BATCH]
        vectors[[row for row, _ in batch]] = cached.embed([text for _, text in batch])
    return vectors


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One builder at a time per KB file, across processes (a sweep's jobs start together)."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
