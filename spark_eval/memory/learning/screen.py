"""The learner's screen: an insight must be a lesson about a library, not an echo of the harness's own text.

Cheap and deterministic, applied before curation; what it rejects is logged as a REJECT op with the reason:

- it must name at least one API of its library that the library's documentation has (`numpy.argsort`,
  `DataFrame.groupby`, `np.nanmean`, or a method on a variable such as `df.pivot_table`);
- it must not share a run of `echo_n` words with a prompt or rubric of the harness (a small learner otherwise
  hands the judge's rubric back as a lesson);
- it must not share a run of `problem_n` words with the text of a problem it was learned from.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from spark_eval.memory.docs.apilabels import IMPORT_ALIASES

_DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_BACKTICKED = re.compile(r"`([A-Za-z_][\w.]*)")
_WORD = re.compile(r"[a-z0-9_]+")


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _suffixes(qualname: str) -> Iterable[str]:
    """`pandas.core.frame.DataFrame.groupby` -> `core.frame.DataFrame.groupby`, ..., `DataFrame.groupby`, `groupby`."""
    parts = qualname.split(".")
    return (".".join(parts[i:]) for i in range(1, len(parts)))


class InsightScreen:
    """Says why a proposed insight is not a lesson about a library, or None when it passes.

    Args:
        api_names: each library's documented qualified names.
        echoes: texts an insight must not repeat (the harness's prompts and rubrics).
        echo_n: words in a run shared with `echoes` that rejects.
        problem_n: words in a run shared with a source problem's text that rejects.
    """

    def __init__(self, api_names: Mapping[str, Iterable[str]], echoes: Sequence[str], echo_n: int = 6,
                 problem_n: int = 8) -> None:
        self.full = {lib: frozenset(names) for lib, names in api_names.items()}
        self.suffixes = {lib: frozenset(s for q in names for s in _suffixes(q)) for lib, names in self.full.items()}
        self.echo_n, self.problem_n = echo_n, problem_n
        self.echo_grams = set().union(*(word_ngrams(t, echo_n) for t in echoes)) if echoes else set()

    def apis(self, library: str | None, names: Sequence[str], text: str) -> list[str]:
        """The documented APIs among `names` (the insight's own list) and the dotted or backticked names in
        `text`, for `library` (every library when None)."""
        libraries = [library] if library in self.full else list(self.full)
        found = []
        mentioned = [n.strip() for n in names] + _DOTTED.findall(text) + _BACKTICKED.findall(text)
        for name in dict.fromkeys(n.strip("`.() ") for n in mentioned if n.strip()):
            if any(self._documented(lib, name) for lib in libraries):
                found.append(name)
        return found

    def _documented(self, library: str, name: str) -> bool:
        head, dot, rest = name.partition(".")
        resolved = IMPORT_ALIASES[head] + dot + rest if dot and head in IMPORT_ALIASES else name
        if resolved in self.full[library] or resolved in self.suffixes[library]:
            return True
        # a method on a variable (`df.pivot_table`, `arr.reshape`): the name without its receiver
        return bool(dot) and head not in IMPORT_ALIASES and rest in self.suffixes[library]

    def reason(self, library: str | None, names: Sequence[str], text: str, problem_texts: Sequence[str]) -> str | None:
        """Why an insight (its library, API names and full text) is rejected, or None."""
        if not self.apis(library, names, text):
            return f"names no API that the documentation of {library or 'any library'} has"
        grams = word_ngrams(text, self.echo_n)
        echoed = sorted(grams & self.echo_grams)
        if echoed:
            return f"repeats the harness's prompts or rubrics ({' '.join(echoed[0])!r})"
        grams = word_ngrams(text, self.problem_n)
        for problem in problem_texts:
            shared = sorted(grams & word_ngrams(problem, self.problem_n))
            if shared:
                return f"restates its problem's text ({' '.join(shared[0])!r})"
        return None
