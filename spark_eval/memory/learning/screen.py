"""The learner's screen: an insight must be a lesson about a library, true to the attempts it was learned from, not
an echo of the harness's own text.

Cheap and deterministic, applied before curation; what it rejects is logged as a REJECT op with the reason (and, in a
poisoning run, the poison mark). In order:

- `format`: no field holds a placeholder of the reply format (`<the kind of task>`, `...`), the library is not
  `General`. An `applies_when` that only repeats the title or the start of the content says nothing: the curator
  drops it (`echoed_when`) and keeps the lesson;
- `library`: its library is the library of one of its source attempts (a lesson filed under NumPy learned from
  pandas problems is not about what was seen);
- `api`: it names at least one API of its library that the library's documentation has (`numpy.argsort`,
  `DataFrame.groupby`, `np.nanmean`, or a method on a variable such as `df.pivot_table`), in its content;
- `title`: when both its title and its content name APIs, they share one (a title about `np.where` over content
  about string counting is two lessons, neither true);
- `source`: its content names an API of its source attempts: a document they were shown, their reference
  solution's labelled APIs (`docs/apilabels.py`) or a name their code calls (a lesson about `np.cosh` learned
  from attempts that never met it is invented);
- `denial`: no sentence of its content says that an API the documentation has does not exist or is not a standard
  method (`np.where ... is not a standard method in NumPy and should be avoided`: false by the documentation);
- `echo`: it does not share a run of `echo_n` words with a prompt or rubric of the harness (a small learner otherwise
  hands the judge's rubric back as a lesson);
- `problem`: it does not share a run of `problem_n` words with the text of a problem it was learned from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from spark_eval.memory.docs.apilabels import DOTTED, IMPORT_ALIASES
from spark_eval.memory.leakage import word_ngrams

_BACKTICKED = re.compile(r"`([A-Za-z_][\w.]*)")
_WORD = re.compile(r"[a-z0-9_]+")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")
_DENIAL = re.compile(r"\b(?:is not an? (?:standard|valid|real|built-?in|existing)|are not (?:standard|valid|real)|"
                     r"does not exist|do not exist|doesn't exist|don't exist|no such (?:function|method|attribute)|"
                     r"is not (?:a )?(?:part of|available in|defined in)|non-?existent)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
PLACEHOLDER_WORDS = 3
"""A placeholder of the reply format this long (in words) or longer is found inside a field; a shorter one (`...`)
only as the whole field."""


@dataclass(frozen=True)
class SourceFacts:
    """What the screen knows of one attempt an insight was learned from."""

    library: str
    text: str
    """The problem's text."""
    apis: frozenset[str]
    """The last parts of the API names the attempt met: documents it was shown, its reference's labels, its code's
    calls and dotted names."""


def last_parts(names: Iterable[str]) -> frozenset[str]:
    """`numpy.argsort` -> `argsort`; `df.str.count` -> `count`."""
    return frozenset(n.strip("`.() ").rsplit(".", 1)[-1] for n in names if n.strip("`.() "))


def code_names(code: str) -> frozenset[str]:
    """The names a piece of code calls or reaches through a dot (`df.groupby(...).agg` -> groupby, agg; `len(x)`)."""
    dotted = [part for name in DOTTED.findall(code) for part in name.split(".")[1:]]
    return frozenset(dotted + _CALLED.findall(code))


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
                 problem_n: int = 8, placeholders: Sequence[str] = ()) -> None:
        self.full = {lib: frozenset(names) for lib, names in api_names.items()}
        self.suffixes = {lib: frozenset(s for q in names for s in _suffixes(q)) for lib, names in self.full.items()}
        self.echo_n, self.problem_n = echo_n, problem_n
        self.echo_grams = set().union(*(word_ngrams(t, echo_n) for t in echoes)) if echoes else set()
        self.placeholders = [tuple(_WORD.findall(p.lower())) or (p.strip(),) for p in placeholders]

    def apis(self, library: str | None, names: Sequence[str], text: str) -> list[str]:
        """The documented APIs among `names` (the insight's own list) and the dotted or backticked names in
        `text`, for `library` (every library when None)."""
        libraries = [library] if library in self.full else list(self.full)
        found = []
        mentioned = [n.strip() for n in names] + DOTTED.findall(text) + _BACKTICKED.findall(text)
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

    def reason(self, library: str | None, names: Sequence[str], text: str, problem_texts: Sequence[str], *,
               title: str = "", content: str | None = None, applies_when: str | None = None,
               sources: Sequence[SourceFacts] = ()) -> str | None:
        """Why an insight is rejected, or None. `text` is its full searched text, `names` its own API list; `title`,
        `content` and `applies_when` are its fields (`content` None: the format, title and source checks are
        skipped, as for a text without fields); `sources` what its source attempts met (none known: no library or
        source check)."""
        if content is not None:
            bad = self._format(library, title, content, applies_when or "")
            if bad:
                return bad
        if sources and library not in {s.library for s in sources}:
            return (f"filed under {library or 'General'}, learned from {'/'.join(sorted({s.library for s in sources}))}"
                    " problems")
        if not self.apis(library, names, text if content is None else content):
            return f"names no API that the documentation of {library or 'any library'} has"
        if content is not None:
            said = self._named(library, names, content)
            headline = self._named(library, names, title)
            if said and headline and not said & headline:
                return (f"title and content are about different APIs ({', '.join(sorted(headline))} vs "
                        f"{', '.join(sorted(said))})")
            met = frozenset().union(*(s.apis for s in sources if s.library == library)) if sources else None
            if met is not None and not said & met:
                return (f"its content names no API its source attempts met ({', '.join(sorted(said)) or 'none'})")
            denied = self._denied(library, content)
            if denied:
                return f"says a documented API does not exist ({', '.join(denied)})"
        grams = word_ngrams(text, self.echo_n)
        echoed = sorted(grams & self.echo_grams)
        if echoed:
            return f"repeats the harness's prompts or rubrics ({' '.join(echoed[0])!r})"
        grams = word_ngrams(text, self.problem_n)
        for problem in [*problem_texts, *(s.text for s in sources)]:
            shared = sorted(grams & word_ngrams(problem, self.problem_n))
            if shared:
                return f"restates its problem's text ({' '.join(shared[0])!r})"
        return None

    def library_of(self, library: str | None, names: Sequence[str], content: str,
                   sources: Sequence[SourceFacts]) -> str | None:
        """The library an insight is about: of its source attempts' libraries, the one whose documentation has the most
        of the APIs it names (its own on a tie): a small learner files a lesson about `pandas.get_dummies` learned
        from a pandas problem under the first library of the list it was shown. Its own when none has any (the
        screen then rejects it)."""
        libraries = list(dict.fromkeys(s.library for s in sources))
        if not libraries:
            return library
        found = [(len(self.apis(lib, names, content)), lib == library, -k, lib) for k, lib in enumerate(libraries)]
        count, _, _, best = max(found)
        return best if count else library

    def _format(self, library: str | None, title: str, content: str, applies_when: str) -> str | None:
        """Why the fields are not a lesson's but the reply format's, or None."""
        for field, value in (("title", title), ("content", content), ("applies_when", applies_when)):
            words = tuple(_WORD.findall(value.lower()))
            for placeholder in self.placeholders:
                size = len(placeholder)
                whole = value.strip() == placeholder[0] if size == 1 and not placeholder[0].isalnum() else False
                inside = size >= PLACEHOLDER_WORDS and any(words[i : i + size] == placeholder
                                                           for i in range(len(words) - size + 1))
                if whole or inside or (words and words == placeholder):
                    return f"{field} holds the reply format's placeholder ({' '.join(placeholder)!r})"
        if library is None:
            return "filed under General, not a library"
        return None

    def _denied(self, library: str | None, content: str) -> list[str]:
        """The documented APIs a sentence of `content` says do not exist or are not standard (false by the
        documentation; a small learner writes it of `np.where` and `pandas.get_dummies` alike)."""
        denied: list[str] = []
        last = ""  # the name mentioned last, in this sentence or one before
        for sentence in _SENTENCE.split(content):
            denial = _DENIAL.search(sentence)
            mentions = sorted((m.start(), m.group(1) if m.re is _BACKTICKED else m.group(0))
                              for pattern in (DOTTED, _BACKTICKED) for m in pattern.finditer(sentence))
            if denial:  # the name nearest the words that deny it ("This function is not ...": the one before)
                near = min(mentions, key=lambda m: abs(m[0] - denial.start()), default=(0, last))[1]
                denied += [n for n in self.apis(library, [], f"`{near}`") if n not in denied]
            last = mentions[-1][1] if mentions else last
        return denied

    @staticmethod
    def echoed_when(title: str, content: str, applies_when: str) -> bool:
        """Whether `applies_when` only repeats the title or the start of the content (a small learner copies its
        title there): it then says nothing of when the lesson applies."""
        when = " ".join(_WORD.findall(applies_when.lower()))
        return bool(when) and when in (" ".join(_WORD.findall(title.lower())),
                                       " ".join(_WORD.findall(content.lower()))[: len(when)])

    def _named(self, library: str | None, names: Sequence[str], text: str) -> frozenset[str]:
        """The last parts of the APIs `text` names: documented names written as code, and words that are the last
        part of a documented name of the insight's own API list (`NumPy's where`)."""
        listed = last_parts(self.apis(library, names, ""))
        words = set(_IDENTIFIER.findall(text))
        return last_parts(self.apis(library, [], text)) | frozenset(w for w in listed if w in words)
