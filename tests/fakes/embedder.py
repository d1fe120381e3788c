"""A deterministic bag-of-words embedder for tests: equal texts give equal vectors, shared words raise cosine."""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np


class HashEmbedder:
    """Each lower-cased word adds 1 to a hashed dimension; rows are L2-normalised."""

    def __init__(self, dim: int = 64, name: str = "hash-bow", **_: object) -> None:
        self.dim = dim
        self.name = name
        self.calls = 0

    @staticmethod
    def configured_name(name: str = "hash-bow", **_: object) -> str:
        return name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9_]+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)
