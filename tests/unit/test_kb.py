"""The knowledge base's build, cache key, chunk filter and saved index, over a fake walk and a fake embedder."""
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from spark_eval.memory.docs import kb as kb_module
from spark_eval.memory.docs.kb import ChunkFilter, index_path, is_signature_only, kb_key, load_knowledge_base
from spark_eval.memory.docs.walk import DocChunk

VERSIONS = {"Numpy": "1.26.4", "Tensorflow": "2.16.1"}


def chunk(qualname, section="overview", text=None, library="Numpy"):
    text = text if text is not None else f"{qualname}(x)\n\nAbout {qualname.rsplit('.', 1)[-1]}."
    return DocChunk(id=f"doc:{qualname.split('.')[0]}:{qualname}#{section}", library=library, qualname=qualname,
                    version=VERSIONS[library], objtype="function", section=section, title=qualname, text=text)


WALK = {
    "Numpy": [chunk("numpy.argsort"), chunk("numpy.argsort", "parameters", "numpy.argsort — Parameters\n\naxis: int"),
              chunk("numpy.sort"), chunk("numpy.core.bare", text="numpy.core.bare(a, b)")],
    "Tensorflow": [chunk("tensorflow.sort", library="Tensorflow"),
                   chunk("tensorflow.raw_ops.Sort", library="Tensorflow"),
                   chunk("tensorflow.compat.v1.sort", library="Tensorflow")],
}


class WordEmbedder:
    """Deterministic 8-d vectors from the words of a text; counts what it embeds."""

    name = "words-8"
    dim = 8

    def __init__(self):
        self.embedded = 0

    def embed(self, texts):
        self.embedded += len(texts)
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(rows, texts):
            for word in text.lower().split():
                row[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def walks(monkeypatch):
    walked = []

    def walk_library(python, library, version=None):
        walked.append(library)
        return list(WALK[library])

    monkeypatch.setattr(kb_module, "walk_library", walk_library)
    monkeypatch.setattr(kb_module, "_versions", lambda cfg: {lib: VERSIONS[lib] for lib in cfg.libraries})
    return walked


def kb_cfg(tmp_path, **extra):
    return OmegaConf.create({"python": "python3", "libraries": ["Numpy", "Tensorflow"], "cache_dir": str(tmp_path),
                             "max_chunks": None, "rrf_k": 60, "candidates": 100, "dense_weight": 1.0, **extra})


def test_the_chunk_filter_leaves_out_globbed_names_and_optionally_bare_signatures():
    every = ChunkFilter()
    assert all(every.keeps(c) for chunks in WALK.values() for c in chunks)
    lean = ChunkFilter(exclude=("tensorflow.raw_ops.*", "tensorflow.compat.v1.*"), signature_only=False)
    kept = [c.qualname for chunks in WALK.values() for c in chunks if lean.keeps(c)]
    assert kept == ["numpy.argsort", "numpy.argsort", "numpy.sort", "tensorflow.sort"]
    assert is_signature_only(chunk("numpy.core.bare", text="numpy.core.bare(a, b)"))
    assert not is_signature_only(chunk("numpy.argsort", "parameters", "numpy.argsort — Parameters"))


def test_the_cache_key_changes_with_the_filter_and_not_for_the_default():
    plain = kb_key(VERSIONS, "words-8", None)
    assert kb_key(VERSIONS, "words-8", None, ChunkFilter()) == plain  # KBs built before the filter keep their key
    assert kb_key(VERSIONS, "words-8", None, ChunkFilter(exclude=("tensorflow.raw_ops.*",))) != plain
    assert kb_key(VERSIONS, "words-8", None, ChunkFilter(signature_only=False)) != plain
    assert kb_key(VERSIONS, "other-8", None) != plain


def test_a_built_kb_is_opened_from_its_saved_index_without_walking_or_embedding(walks, tmp_path):
    embedder = WordEmbedder()
    built = load_knowledge_base(kb_cfg(tmp_path), embedder)
    done = built.store.get_meta("complete")
    assert done["chunks_by_library"] == {"Numpy": 4, "Tensorflow": 3} and done["embedder"] == "words-8"
    assert {"walk_s", "embed_s", "index_s"} <= set(done) and embedder.embedded == 7
    assert (index_path(built.store) / "items.json").is_file()
    query = "sort an array"
    expected = built.index.search(query, embedder.embed([query])[0], k=5, libraries=["Numpy"])
    built.store.close()
    walks.clear()
    embedder.embedded = 0
    opened = load_knowledge_base(kb_cfg(tmp_path), embedder)
    assert walks == [] and embedder.embedded == 0 and opened.hash == built.hash
    assert opened.index.search(query, embedder.embed([query])[0], k=5, libraries=["Numpy"]) == expected
    opened.store.close()


def test_a_missing_or_damaged_index_is_made_again_from_the_store(walks, tmp_path, caplog):
    embedder = WordEmbedder()
    first = load_knowledge_base(kb_cfg(tmp_path), embedder)
    folder = index_path(first.store)
    first.store.close()
    (folder / "items.json").write_text("{not json")
    walks.clear()
    with caplog.at_level(logging.WARNING):
        again = load_knowledge_base(kb_cfg(tmp_path), embedder)
    assert "cannot be opened" in caplog.text and walks == [] and len(again.index) == 7
    again.store.close()
    remade = load_knowledge_base(kb_cfg(tmp_path), embedder)  # the index made again was saved
    assert [i.id for i in remade.index.items] == [i.id for i in again.index.items]
    assert all(i.text == "" for i in remade.index.items)
    remade.store.close()


def test_a_filtered_kb_is_its_own_cache_entry(walks, tmp_path):
    embedder = WordEmbedder()
    full = load_knowledge_base(kb_cfg(tmp_path), embedder)
    lean = load_knowledge_base(kb_cfg(tmp_path, exclude=["tensorflow.raw_ops.*"], signature_only=False), embedder)
    assert full.store.path != lean.store.path and full.hash != lean.hash
    assert lean.chunks_by_library == {"Numpy": 3, "Tensorflow": 2}
    assert {item.id for item in lean.index.items} == {c.id for c in WALK["Numpy"][:3]} | {
        "doc:tensorflow:tensorflow.sort#overview", "doc:tensorflow:tensorflow.compat.v1.sort#overview"}
    full.store.close()
    lean.store.close()


def test_dense_overviews_embed_each_objects_name_and_summary_and_leave_sections_to_bm25(walks, tmp_path):
    embedder = WordEmbedder()
    texts = []
    real_embed = embedder.embed
    embedder.embed = lambda batch: texts.extend(batch) or real_embed(batch)
    kb = load_knowledge_base(kb_cfg(tmp_path, dense="overviews"), embedder)
    # six overviews (the parameters section has none), each without its signature: `numpy.argsort\n\nAbout argsort.`
    assert sorted(texts) == sorted(["numpy.argsort\n\nAbout argsort.", "numpy.sort\n\nAbout sort.", "numpy.core.bare",
                                    "tensorflow.sort\n\nAbout sort.", "tensorflow.raw_ops.Sort\n\nAbout Sort.",
                                    "tensorflow.compat.v1.sort\n\nAbout sort."])
    assert kb.store.get_meta("complete")["embedded"] == 6
    query = "argsort axis"
    vector = WordEmbedder().embed([query])[0]
    dense = kb.index.search(query, vector, k=10, mode="dense")
    assert len(dense) == 6 and all(h.id.endswith("#overview") for h in dense)
    hybrid = kb.index.search(query, vector, k=10, libraries=["Numpy"])
    section = next(h for h in hybrid if h.id.endswith("#parameters"))
    assert section.dense_rank is None and section.bm25_rank is not None  # found by BM25 alone
    plain = load_knowledge_base(kb_cfg(tmp_path), WordEmbedder())
    assert plain.store.path != kb.store.path and len(plain.index.search(query, vector, k=10, mode="dense")) == 7
    assert plain.hash != kb.hash  # the same chunks, found differently
    kb.store.close()
    plain.store.close()


def test_an_unknown_dense_mode_is_refused_in_one_line(walks, tmp_path):
    with pytest.raises(ValueError, match=r"memory.kb.dense='sections' is not one of \('overviews', 'all'\)"):
        load_knowledge_base(kb_cfg(tmp_path, dense="sections"), WordEmbedder())


def test_a_rebuild_from_the_same_inputs_gives_the_same_hash_and_index(walks, tmp_path):
    first = load_knowledge_base(kb_cfg(tmp_path / "a", dense="overviews"), WordEmbedder())
    second = load_knowledge_base(kb_cfg(tmp_path / "b", dense="overviews"), WordEmbedder())
    assert first.hash == second.hash and Path(first.store.path).name == Path(second.store.path).name
    assert [i.id for i in first.index.items] == [i.id for i in second.index.items]
    assert np.array_equal(first.index.vectors, second.index.vectors)
    first.store.close()
    second.store.close()
