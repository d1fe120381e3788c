"""Hybrid retrieval over documentation chunks and insights: BM25 (bm25s) and dense vectors, fused by reciprocal rank."""
from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

import bm25s
import numpy as np
import Stemmer

from spark_eval.memory.embed import normalize_rows

KINDS = ("doc", "insight")
MODES = ("bm25", "dense", "hybrid")
SAVED_FORMAT = "hybrid-index-1"  # what `HybridIndex.save` writes; `load` refuses any other


@dataclass(frozen=True)
class IndexItem:
    """One searchable text."""

    id: str
    """Unique across the index."""
    kind: str
    """`doc` (a documentation chunk) or `insight` (curated experience)."""
    library: str | None
    """`Pandas`, `Numpy`, ...; None: about no library in particular (matches every library filter)."""
    families: tuple[str, ...]
    """Origin families (`Pandas/12`) of the problems an insight was learned from; empty for docs."""
    text: str
    """What BM25 indexes (the vector is computed from it by the caller); empty in an index `HybridIndex.load` opened."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index item {self.id!r}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Hit:
    """One search result. A rank or score is None when the item was not among that list's candidates."""

    id: str
    kind: str
    library: str | None
    score: float
    """Reciprocal-rank fusion score: sum over the lists of weight / (rrf_k + rank) (BM25's weight is 1)."""
    bm25_rank: int | None
    """1-based rank among the BM25 candidates (within the filters)."""
    dense_rank: int | None
    """1-based rank among the dense candidates (within the filters)."""
    bm25_score: float | None
    """BM25 score of the query's stemmed terms."""
    dense_score: float | None
    """Cosine similarity to the query vector."""


@dataclass(frozen=True)
class _Ranking:
    """One ranked list: the candidate rows, best first, and the scores of all rows."""

    rows: np.ndarray
    scores: np.ndarray

    def ranks(self) -> dict[int, int]:
        return {int(row): rank for rank, row in enumerate(self.rows, start=1)}


@dataclass(frozen=True)
class _Filter:
    """A library and kind filter: its mask over rows and the contiguous blocks of rows it keeps."""

    mask: np.ndarray
    blocks: list[slice]


class HybridIndex:
    """BM25 over item texts (PyStemmer English stems, English stopwords) plus a dense matrix, fused by RRF.

    Filters are applied before ranking, so a filtered search ranks within the allowed items only. Items are
    kept grouped by (library, kind), so a filtered dense search multiplies only the allowed blocks of the matrix.

    Args:
        items: what can be found.
        vectors: one row per item (normalised here); an all-zero row leaves its item to BM25 alone.
        rrf_k: the constant in 1 / (rrf_k + rank).
        candidates: how many of each list's best take part in the fusion.
        dense_weight: the dense list's weight in the fusion (BM25's is 1).
    """

    def __init__(self, items: Sequence[IndexItem], vectors: np.ndarray, rrf_k: int = 60, candidates: int = 100,
                 dense_weight: float = 1.0) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(items):
            raise ValueError(f"{len(items)} items need a ({len(items)}, dim) matrix, got {vectors.shape}")
        order = sorted(range(len(items)), key=lambda row: _block_key(items[row]))
        grouped = tuple(items[row] for row in order)  # grouped by (library, kind); row i is vectors[i]
        self._setup(grouped, normalize_rows(vectors[order]), _bm25_index([item.text for item in grouped]),
                    rrf_k, candidates, dense_weight)

    def _setup(self, items: tuple[IndexItem, ...], vectors: np.ndarray, bm25: Any, rrf_k: int, candidates: int,
               dense_weight: float) -> None:
        """The search structures over items already grouped by (library, kind), their unit vectors and BM25 index."""
        self.items = items
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("index items must have unique ids")
        self.vectors = vectors
        self._dense_rows = np.any(vectors != 0, axis=1)  # an all-zero row has no vector: not in the dense list
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.dense_weight = dense_weight
        self._id_rank = _sort_ranks(ids)
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25
        self._blocks = _blocks(self.items)
        self._family_rows = _rows_by_family(self.items)
        self._filters: dict[tuple[frozenset[str] | None, frozenset[str] | None], _Filter] = {}

    def save(self, folder: Path) -> None:
        """Write the index into `folder` (replaced whole) so that `load` opens it without re-tokenising: the
        items without their texts, the unit vectors, and bm25s's score matrix and vocabulary."""
        folder = Path(folder)
        staging = folder.with_name(folder.name + ".part")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        np.save(staging / "vectors.npy", self.vectors)
        if self._bm25 is not None:
            self._bm25.save(str(staging / "bm25"), show_progress=False)
        items = [[item.id, item.kind, item.library, list(item.families)] for item in self.items]
        (staging / "items.json").write_text(json.dumps({"format": SAVED_FORMAT, "items": items}))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    @classmethod
    def load(cls, folder: Path, rrf_k: int = 60, candidates: int = 100, dense_weight: float = 1.0) -> "HybridIndex":
        """The index `save` wrote into `folder`; its items' texts are empty (BM25 needs only its matrix).
        Raises FileNotFoundError or ValueError when the folder is not a complete index of this format."""
        folder = Path(folder)
        meta = json.loads((folder / "items.json").read_text())
        if meta.get("format") != SAVED_FORMAT:
            raise ValueError(f"{folder} holds an index of format {meta.get('format')!r}, not {SAVED_FORMAT!r}")
        items = tuple(IndexItem(id=i, kind=kind, library=library, families=tuple(families), text="")
                      for i, kind, library, families in meta["items"])
        vectors = np.load(folder / "vectors.npy")
        if vectors.shape[0] != len(items):
            raise ValueError(f"{folder}: {len(items)} items but {vectors.shape[0]} vectors")
        bm25 = bm25s.BM25.load(str(folder / "bm25")) if (folder / "bm25").is_dir() else None
        index = cls.__new__(cls)
        index._setup(items, vectors, bm25, rrf_k, candidates, dense_weight)
        return index

    def __len__(self) -> int:
        return len(self.items)

    def search(self, query: str, query_vector: np.ndarray | None, k: int = 5,
               libraries: Collection[str] | None = None, kinds: Collection[str] | None = None,
               exclude_families: Collection[str] = (), mode: str = "hybrid") -> list[Hit]:
        """The k best items for the query that pass the filters, best first (ties: by id).

        Args:
            query: the text BM25 scores.
            query_vector: the query's embedding, from the embedder the item vectors came from (unused by `bm25`).
            k: how many hits at most.
            libraries: keep items of these libraries and items of no library (None: every library).
            kinds: keep items of these kinds (None: both).
            exclude_families: drop every item learned from a problem of one of these origin families.
            mode: `bm25`, `dense` or `hybrid` (both, fused).
        """
        if mode not in MODES:
            raise ValueError(f"search mode {mode!r} is not one of {MODES}")
        if not self.items or k <= 0:
            return []
        key = (None if libraries is None else frozenset(libraries), None if kinds is None else frozenset(kinds))
        if key not in self._filters:
            self._filters[key] = self._filter(*key)
        blocks = self._filters[key].blocks
        allowed = self._without_families(self._filters[key].mask, exclude_families)
        rankings = {}
        if mode != "dense":
            rankings["bm25"] = self._bm25_ranking(query, allowed)
        if mode != "bm25":
            rankings["dense"] = self._dense_ranking(query_vector, allowed, blocks)
        return self._fuse(rankings, k)

    def _filter(self, libraries: frozenset[str] | None, kinds: frozenset[str] | None) -> _Filter:
        """The blocks, and the mask of rows, that pass a library and kind filter (None: any)."""
        blocks = [rows for (library, kind), rows in self._blocks.items()
                  if (libraries is None or library in libraries or library == "") and (kinds is None or kind in kinds)]
        mask = np.zeros(len(self.items), dtype=bool)
        for rows in blocks:
            mask[rows] = True
        return _Filter(mask, blocks)

    def _without_families(self, mask: np.ndarray, exclude_families: Collection[str]) -> np.ndarray:
        excluded = [self._family_rows[f] for f in exclude_families if f in self._family_rows]
        if not excluded:
            return mask
        mask = mask.copy()  # the cached filter mask stays as it is
        mask[np.concatenate(excluded)] = False
        return mask

    def _bm25_ranking(self, query: str, allowed: np.ndarray) -> _Ranking:
        """Items sharing at least one stemmed term with the query, by BM25 score."""
        tokens = bm25s.tokenize(query, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)[0]
        token_ids = self._bm25.get_tokens_ids(tokens) if self._bm25 is not None else []
        if not token_ids:
            return _Ranking(np.zeros(0, dtype=np.int64), np.zeros(len(self.items), dtype=np.float32))
        scores = self._bm25.get_scores_from_ids(token_ids, weight_mask=allowed)
        return _Ranking(self._top(scores, scores > 0), scores)

    def _dense_ranking(self, query_vector: np.ndarray | None, allowed: np.ndarray, blocks: list[slice]) -> _Ranking:
        """Allowed items with a vector, by cosine similarity to the query vector (rows outside the blocks are not
        scored)."""
        if query_vector is None:
            raise ValueError("dense and hybrid search need the query's vector")
        query_vector = normalize_rows(np.asarray(query_vector).reshape(-1))
        scores = np.full(len(self.items), -np.inf, dtype=np.float32)
        for rows in blocks:
            # numpy's own single-threaded loop, not BLAS: a BLAS call waits for its slowest thread, which on a
            # busy two-core machine adds milliseconds to every block
            scores[rows] = np.einsum("ij,j->i", self.vectors[rows], query_vector)
        return _Ranking(self._top(scores, allowed & self._dense_rows), scores)

    def _top(self, scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """The best `candidates` eligible rows: highest score first, equal scores by id."""
        rows = np.flatnonzero(eligible)
        if len(rows) > self.candidates:
            kept = scores[rows]
            cut = np.partition(kept, len(kept) - self.candidates)[len(kept) - self.candidates]
            rows = rows[kept >= cut]
        order = np.lexsort((self._id_rank[rows], -scores[rows]))
        return rows[order[: self.candidates]]

    def _fuse(self, rankings: dict[str, _Ranking], k: int) -> list[Hit]:
        """Reciprocal-rank fusion: each item scores sum over the lists of weight / (rrf_k + its rank there)."""
        ranks = {name: ranking.ranks() for name, ranking in rankings.items()}
        fused: dict[int, float] = {}
        for name, by_row in ranks.items():
            weight = self.dense_weight if name == "dense" else 1.0
            for row, rank in by_row.items():
                fused[row] = fused.get(row, 0.0) + weight / (self.rrf_k + rank)
        best = sorted(fused, key=lambda row: (-fused[row], self._id_rank[row]))[:k]
        return [self._hit(row, fused[row], rankings, ranks) for row in best]

    def _hit(self, row: int, score: float, rankings: dict[str, _Ranking], ranks: dict[str, dict[int, int]]) -> Hit:
        item = self.items[row]
        fields: dict[str, Any] = {}
        for name in ("bm25", "dense"):
            rank = ranks.get(name, {}).get(row)
            fields[f"{name}_rank"] = rank
            fields[f"{name}_score"] = None if rank is None else float(rankings[name].scores[row])
        return Hit(id=item.id, kind=item.kind, library=item.library, score=score, **fields)


def _sort_ranks(ids: list[str]) -> np.ndarray:
    """Each id's position in sorted order: the tie-breaker, as an array the ranking can index."""
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return ranks


def _bm25_index(texts: list[str]) -> Any:
    """A bm25s index of the texts, or None when they hold no term at all."""
    tokenized = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
    if not tokenized.vocab:
        return None
    index = bm25s.BM25()
    index.index(tokenized, show_progress=False)
    return index


def _block_key(item: IndexItem) -> tuple[str, str]:
    return item.library or "", item.kind


def _blocks(items: Sequence[IndexItem]) -> dict[tuple[str, str], slice]:
    """The contiguous rows of each (library, kind) in items sorted by it ("" stands for no library)."""
    blocks, start = {}, 0
    for key, group in itertools.groupby(items, key=_block_key):
        end = start + sum(1 for _ in group)
        blocks[key] = slice(start, end)
        start = end
    return blocks


def _rows_by_family(items: Sequence[IndexItem]) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = {}
    for row, item in enumerate(items):
        for family in item.families:
            rows.setdefault(family, []).append(row)
    return {family: np.asarray(found, dtype=np.int64) for family, found in rows.items()}
