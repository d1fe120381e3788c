"""Overlap of texts: the leakage guard (does a text carry the problem's reference solution? code-token n-grams) and
the word n-grams that tell a text copied from another (advice from an item it was shown, a lesson from a prompt)."""
from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9_]")
_WORD = re.compile(r"[a-z0-9_]+")


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The runs of `n` words of `text`, lower-cased (punctuation and layout do not matter)."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def code_tokens(text: str) -> tuple[str, ...]:
    """Identifiers, numbers and single punctuation marks; whitespace and layout do not matter."""
    return tuple(_TOKEN.findall(text))


def ngrams(tokens: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    """The token n-grams; a sequence shorter than n is one n-gram of its own length."""
    if not tokens:
        return set()
    n = min(n, len(tokens))
    return {tokens[i : i + n] for i in range(len(tokens) - n + 1)}


@lru_cache(maxsize=4096)
def _reference_ngrams(reference: str, n: int) -> frozenset[tuple[str, ...]]:
    return frozenset(ngrams(code_tokens(reference), n))


def overlap(text: str, reference: str, n: int = 6) -> float:
    """Share of the reference's n-grams that also occur in `text` (0 when the reference is empty)."""
    ref = _reference_ngrams(reference, n)
    if not ref:
        return 0.0
    size = len(next(iter(ref)))
    return len(ref & ngrams(code_tokens(text), size)) / len(ref)


class LeakGuard:
    """Flags texts whose overlap with the reference code reaches `threshold`.

    Args:
        n: n-gram length in code tokens.
        threshold: share of the reference's n-grams that makes a text a leak.
    """

    def __init__(self, n: int = 6, threshold: float = 0.5) -> None:
        self.n = n
        self.threshold = threshold

    def score(self, text: str, reference: str) -> float:
        return overlap(text, reference, self.n)

    def leaks(self, text: str, reference: str) -> bool:
        return bool(reference.strip()) and self.score(text, reference) >= self.threshold
