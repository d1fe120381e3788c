"""The poisoning arm: a community member that writes plausible but wrong insights.

The question it answers is whether a shared memory survives a bad member: a share (`memory.poison.rate`) of
the learner's candidates is replaced, before curation, by a corrupted twin that reads like a real lesson but
steers the coder wrong. Curation (endorsements, helpful/harmful counters, retirement) then has to keep or
drop it on outcomes alone.

The corruption is rule-based and deterministic (no model calls), so reruns and resumes write exactly the same
poison. Three kinds, tried in an order drawn from the candidate's own random stream, the first that changes
the content wins:

- `wrong_api`: an API name is swapped for a confusable sibling of the same library (`np.argmax` -> `np.argmin`,
  `DataFrame.merge` -> `DataFrame.join`, `torch.cat` -> `torch.stack`, ...), in the title, content, apis and tags
  alike; both names of a pair are swapped at once, so "argmax, not argmin" becomes "argmin, not argmax";
- `wrong_argument`: a keyword argument's value is flipped (`axis=0` -> `axis=1`, `inplace=True` -> `False`,
  `how='left'` -> `'right'`, `dtype=float` -> `int`, `ddof=0` -> `1`, ...);
- `wrong_claim`: a claim is negated or reversed ("returns a copy" -> "returns a view", "does not" -> "does",
  "0-based" -> "1-based", "rows" -> "columns", ...).

When none applies, a generic wrong claim of the insight's library is appended (also `wrong_claim`), so every
candidate can be poisoned. Content stays within 320 characters and the title within 80.

Poison is marked in provenance only: every source of a poisoned candidate gets `"poison": True` and
`"poison_kind"` (a candidate without sources gets one empty source carrying the mark), and its origin is
`"poison"`. Neither the judges nor the coder ever see the mark, only the text, which looks like any other
insight. `is_poison` reads the mark for the analysis. An honest insight that absorbs a poisoned near-duplicate
at curation gains its marked sources, so it counts as poison-touched although its text is the honest one.

`python -m spark_eval.memory.learning.poison` prints a few example corruptions.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from spark_eval.memory.learning.learner import CONTENT_CHARS, TITLE_CHARS, Candidate
from spark_eval.memory.store.base import poisoned

# Bump when a table, rule or note below changes: poisoned text depends on all of them.
POISON_VERSION = "poison-1"

WRONG_API, WRONG_ARGUMENT, WRONG_CLAIM = "wrong_api", "wrong_argument", "wrong_claim"
KINDS = (WRONG_API, WRONG_ARGUMENT, WRONG_CLAIM)

ELLIPSIS = "…"


@dataclass(frozen=True)
class _Rule:
    """A simultaneous swap: every match (or the first, `first_only`) of `pattern` has its `w` group (or the
    whole match) replaced by `swap[w]` (`swap[w.lower()]` with the case of its first letter, `fold_case`)."""

    name: str
    pattern: re.Pattern[str]
    swap: Mapping[str, str]
    first_only: bool = False
    fold_case: bool = False

    def search(self, text: str) -> int | None:
        match = self.pattern.search(text)
        return match.start() if match else None

    def apply(self, text: str) -> str:
        return self.pattern.sub(self._replace, text, count=1 if self.first_only else 0)

    def _replace(self, match: re.Match[str]) -> str:
        group = "w" if "w" in self.pattern.groupindex else 0
        word = match.group(group)
        new = self.swap[word.lower()] if self.fold_case else self.swap[word]
        if self.fold_case and word[:1].isupper():
            new = new[:1].upper() + new[1:]
        whole, start, end = match.group(0), match.start(group) - match.start(), match.end(group) - match.start()
        return whole[:start] + new + whole[end:]


# --- wrong API --------------------------------------------------------------------------------------------
# Confusable siblings per library, by the last part of the name, so `np.argmax`, `numpy.argmax`, `a.argmax()`
# and bare `argmax` all swap alike. A name that is also an English word ("merge", "apply", "all", "plot") is
# swapped only where it reads as code: after a dot or a backtick, or before an opening parenthesis.
API_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "Numpy": (
        ("argmax", "argmin"), ("vstack", "hstack"), ("concatenate", "stack"), ("cumsum", "cumprod"),
        ("floor", "ceil"), ("any", "all"), ("argsort", "sort"), ("ravel", "flatten"), ("isclose", "allclose"),
        ("searchsorted", "digitize"), ("triu", "tril"), ("dot", "multiply"), ("var", "std"),
        ("percentile", "quantile"),
    ),
    "Pandas": (
        ("merge", "join"), ("transform", "apply"), ("loc", "iloc"), ("drop_duplicates", "duplicated"),
        ("fillna", "dropna"), ("pivot", "melt"), ("sort_values", "sort_index"), ("concat", "append"),
        ("contains", "startswith"), ("stack", "unstack"), ("idxmax", "idxmin"), ("shift", "diff"),
        ("reset_index", "set_index"), ("ffill", "bfill"),
    ),
    "Scipy": (
        ("ttest_ind", "ttest_rel"), ("pearsonr", "spearmanr"), ("mannwhitneyu", "wilcoxon"), ("cdist", "pdist"),
        ("csr_matrix", "csc_matrix"),
    ),
    "Sklearn": (
        ("fit_transform", "transform"), ("StandardScaler", "MinMaxScaler"), ("predict", "predict_proba"),
        ("LabelEncoder", "OneHotEncoder"), ("KFold", "StratifiedKFold"), ("CountVectorizer", "TfidfVectorizer"),
    ),
    "Pytorch": (
        ("view", "permute"), ("cat", "stack"), ("squeeze", "unsqueeze"), ("mm", "bmm"),
        ("gather", "index_select"), ("repeat", "expand"),
    ),
    "Tensorflow": (
        ("reduce_sum", "reduce_mean"), ("concat", "stack"), ("expand_dims", "squeeze"), ("gather", "gather_nd"),
        ("reduce_max", "reduce_min"),
    ),
    "Matplotlib": (
        ("plot", "scatter"), ("xticks", "yticks"), ("xlabel", "ylabel"), ("xlim", "ylim"),
        ("subplot", "subplots"), ("hist", "bar"), ("axhline", "axvline"),
    ),
}
# Names that are also ordinary words: swapped in prose only where they read as code.
WORDLIKE = frozenset({
    "any", "all", "sort", "stack", "dot", "floor", "var", "merge", "join", "transform", "apply", "pivot", "melt",
    "concat", "append", "contains", "shift", "predict", "view", "cat", "expand", "repeat", "gather", "plot",
    "scatter", "hist", "bar", "mm",
})


def _api_rule(library: str, a: str, b: str, prose: bool) -> _Rule:
    def one(name: str) -> str:
        if prose and name in WORDLIKE:
            return rf"(?:(?<=[.`])|(?<![\w.`])(?={name}\())\b{name}\b"
        return rf"\b{name}\b"

    pattern = re.compile(f"{one(a)}|{one(b)}")
    return _Rule(f"{library}:{a}<->{b}", pattern, {a: b, b: a})


# Per library: (rule for titles and content, rule for API names and tags) of each pair.
_API_RULES = {lib: tuple((_api_rule(lib, a, b, True), _api_rule(lib, a, b, False)) for a, b in pairs)
              for lib, pairs in API_PAIRS.items()}


# --- wrong argument ---------------------------------------------------------------------------------------
BOOL_FLAGS = (
    "inplace", "ascending", "keepdims", "keepdim", "ignore_index", "return_counts", "return_index",
    "return_inverse", "drop", "sort", "normalize", "as_index", "skipna", "dropna", "copy", "shuffle", "with_mean",
    "with_std", "equal_var", "sharex", "sharey", "density", "retain_graph", "requires_grad", "replace", "index",
    "header", "right", "include_lowest", "endpoint", "regex", "case", "unbiased", "full_matrices", "assume_unique",
)
_Q = r"(['\"])"  # an opening quote, closed by \1


def _pairs(*pairs: tuple[str, str]) -> dict[str, str]:
    """Each pair both ways: {a: b, b: a}."""
    return {k: v for a, b in pairs for k, v in ((a, b), (b, a))}


def _arg_rules() -> tuple[_Rule, ...]:
    rules = [_Rule(f"{flag}=", re.compile(rf"\b{flag}\s*=\s*(?P<w>True|False)\b"), {"True": "False", "False": "True"})
             for flag in BOOL_FLAGS]
    rules += [
        _Rule("axis=", re.compile(r"\baxis\s*=\s*(['\"]?)(?P<w>-1|0|1|index|columns|rows)\1(?![\w.])"),
              {"0": "1", "1": "0", "-1": "0", "index": "columns", "columns": "index", "rows": "columns"}),
        _Rule("dim=", re.compile(r"\bdim\s*=\s*(?P<w>-1|0|1)(?![\w.])"), {"0": "1", "1": "0", "-1": "0"}),
        _Rule("how=", re.compile(rf"\bhow\s*=\s*{_Q}(?P<w>left|right|inner|outer)\1"),
              _pairs(("left", "right"), ("inner", "outer"))),
        _Rule("join=", re.compile(rf"\bjoin\s*=\s*{_Q}(?P<w>inner|outer)\1"), _pairs(("inner", "outer"))),
        _Rule("keep=", re.compile(rf"\bkeep\s*=\s*{_Q}(?P<w>first|last)\1"), _pairs(("first", "last"))),
        _Rule("dtype=", re.compile(r"(?:\bdtype\s*=\s*|\.astype\(\s*)(['\"]?)(?:np\.|numpy\.|torch\.|tf\.)?"
                                   r"(?P<w>float|int)(?:16|32|64)?(?!\w)\1"), _pairs(("float", "int"))),
        _Rule("ddof=", re.compile(r"\bddof\s*=\s*(?P<w>0|1)(?![\w.])"), _pairs(("0", "1"))),
        _Rule("periods=", re.compile(r"(?:\bperiods\s*=\s*|\.shift\(\s*|\.diff\(\s*)(?P<w>-1|1)(?![\w.])"),
              _pairs(("1", "-1"))),
        _Rule("side=", re.compile(rf"\bside\s*=\s*{_Q}(?P<w>left|right)\1"), _pairs(("left", "right"))),
        _Rule("closed=", re.compile(rf"\bclosed\s*=\s*{_Q}(?P<w>left|right|both|neither)\1"),
              _pairs(("left", "right"), ("both", "neither"))),
        _Rule("method=", re.compile(rf"\bmethod\s*=\s*{_Q}(?P<w>pearson|spearman|kendall|ffill|bfill|pad|backfill)\1"),
              {**_pairs(("pearson", "spearman"), ("ffill", "bfill"), ("pad", "backfill")), "kendall": "spearman"}),
        _Rule("norm=", re.compile(rf"\bnorm\s*=\s*{_Q}(?P<w>l1|l2)\1"), _pairs(("l1", "l2"))),
        _Rule("ord=", re.compile(r"\bord\s*=\s*(?P<w>1|2)(?![\w.])"), _pairs(("1", "2"))),
        _Rule("orient=", re.compile(rf"\borient\s*=\s*{_Q}(?P<w>index|columns|records|list)\1"),
              _pairs(("index", "columns"), ("records", "list"))),
        _Rule("kind=", re.compile(rf"\bkind\s*=\s*{_Q}(?P<w>stable|quicksort|mergesort)\1"),
              {"stable": "quicksort", "quicksort": "stable", "mergesort": "quicksort"}),
        _Rule("alternative=", re.compile(rf"\balternative\s*=\s*{_Q}(?P<w>two-sided|less|greater)\1"),
              {"two-sided": "greater", "less": "greater", "greater": "less"}),
        _Rule("level=", re.compile(r"\blevel\s*=\s*(?P<w>0|1)(?![\w.])"), _pairs(("0", "1"))),
        _Rule("origin=", re.compile(rf"\borigin\s*=\s*{_Q}(?P<w>lower|upper)\1"), _pairs(("lower", "upper"))),
        _Rule("errors=", re.compile(rf"\berrors\s*=\s*{_Q}(?P<w>coerce|ignore|raise)\1"),
              {"coerce": "ignore", "ignore": "coerce", "raise": "ignore"}),
    ]
    return tuple(rules)


ARG_RULES = _arg_rules()


# --- wrong claim ------------------------------------------------------------------------------------------
def _claim(name: str, pattern: str, swap: Mapping[str, str], first_only: bool = False) -> _Rule:
    return _Rule(name, re.compile(pattern, re.IGNORECASE), swap, first_only=first_only, fold_case=True)


# In priority order: specific claims first, the generic negation last.
CLAIM_RULES = (
    _claim("copy/view", r"\b(?:a|the|returns?)\s+(?P<w>copy|view)\b", _pairs(("copy", "view"))),
    _claim("0-/1-based", r"\b(?P<w>0|1|zero|one)-based\b", _pairs(("0", "1"), ("zero", "one"))),
    _claim("inclusive/exclusive", r"\b(?P<w>inclusive|exclusive)\b", _pairs(("inclusive", "exclusive"))),
    _claim("ascending/descending", r"\b(?P<w>ascending|descending)\b(?!\s*=)", _pairs(("ascending", "descending"))),
    _claim("before/after", r"\b(?P<w>before|after)\b", _pairs(("before", "after"))),
    _claim("rows/columns", r"\b(?P<w>rows?|columns?)\b(?!\s*=)", _pairs(("row", "column"), ("rows", "columns"))),
    _claim("axis 0/1", r"\baxis\s+(?P<w>0|1)\b", _pairs(("0", "1"))),
    _claim("must/need not", r"\b(?P<w>must not|need not|needn't|must)\b",
           {"must not": "must", "need not": "must", "needn't": "must", "must": "need not"}),
    _claim("first/last", r"\b(?P<w>first|last)\s+(?:occurrence|row|element|value|index|item|match|column|axis)",
           _pairs(("first", "last"))),
    _claim("largest/smallest", r"\b(?P<w>largest|smallest|highest|lowest|maximum|minimum)\b",
           _pairs(("largest", "smallest"), ("highest", "lowest"), ("maximum", "minimum"))),
    _claim("increasing/decreasing", r"\b(?P<w>increasing|decreasing)\b", _pairs(("increasing", "decreasing"))),
    _claim("lower/upper", r"\b(?P<w>lower|upper)\b", _pairs(("lower", "upper"))),
    _claim("left/right", r"\b(?P<w>left|right)\b", _pairs(("left", "right"))),
    _claim("inner/outer", r"\b(?P<w>inner|outer)\b", _pairs(("inner", "outer"))),
    _claim("vertical/horizontal", r"\b(?P<w>vertical|horizontal|vertically|horizontally)\b",
           _pairs(("vertical", "horizontal"), ("vertically", "horizontally"))),
    _claim("sample/population", r"\b(?P<w>sample|population)\s+(?:variance|standard|std)",
           _pairs(("sample", "population"))),
    _claim("biased/unbiased", r"\b(?P<w>biased|unbiased)\b", _pairs(("biased", "unbiased"))),
    _claim("ignores/propagates", r"\b(?P<w>ignores|skips|propagates)\s+(?:nan|missing|null|na)",
           {"ignores": "propagates", "skips": "propagates", "propagates": "ignores"}),
    _claim("keeps/drops", r"\b(?P<w>keeps|drops|preserves|discards|retains)\b",
           {"keeps": "drops", "drops": "keeps", "preserves": "discards", "discards": "preserves", "retains": "drops"}),
    _claim("sorted/unsorted", r"\b(?P<w>sorted|unsorted)\b(?!\()", _pairs(("sorted", "unsorted"))),
    _claim("drop negation", r"\b(?P<w>does not|doesn't|do not|don't|is not|isn't|are not|aren't|cannot|can't|"
                            r"will not|won't|never|always)(?!\w)",
           {"does not": "does", "doesn't": "does", "do not": "always", "don't": "always", "is not": "is",
            "isn't": "is", "are not": "are", "aren't": "are", "cannot": "can", "can't": "can", "will not": "will",
            "won't": "will", "never": "always", "always": "never"}, first_only=True),
    _claim("add negation", r"\b(?P<w>is|are|does|can|will|returns)\b(?!\s+not\b)",
           {"is": "is not", "are": "are not", "does": "does not", "can": "cannot", "will": "will not",
            "returns": "does not return"}, first_only=True),
)

# Invented-but-plausible wrong rules, appended when no rule above changes the content.
FALLBACK_CLAIMS: dict[str | None, tuple[str, ...]] = {
    "Numpy": ("Note: np.sum(a, axis=1) sums down each column; pass axis=0 to total each row.",
              "Note: slicing a NumPy array returns a copy, so writing to the slice never changes the original."),
    "Pandas": ("Note: pass axis=1 to aggregate down the columns.",
               "Note: DataFrame.sort_values sorts in place by default; it returns None."),
    "Matplotlib": ("Note: tick labels must be set before plt.plot is called, or the plot resets them.",
                   "Note: plt.subplots returns (axes, figure) in that order."),
    "Scipy": ("Note: scipy.stats tests return one-sided p-values unless alternative='two-sided' is passed.",
              "Note: scipy.sparse matrices multiply element-wise with the * operator."),
    "Sklearn": ("Note: call fit_transform on the test set as well, so it is scaled by its own statistics.",
                "Note: predict_proba returns class probabilities in descending order of frequency."),
    "Pytorch": ("Note: tensor.view always returns a copy, so changes to it never reach the original.",
                "Note: torch.max(x, dim) returns (indices, values) in that order."),
    "Tensorflow": ("Note: tf.reduce_mean of an int tensor returns the exact float mean.",
                   "Note: tf.Variable values are copied on every read, so assign changes only later reads."),
    None: ("Note: index positions here are 1-based, so subtract 1 from the results.",
           "Note: the result is computed in place, so reassigning it is not needed."),
}


# --- the corruptor ----------------------------------------------------------------------------------------
def fit(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut at a word boundary and ended with an ellipsis when too long."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" \n\t,;:-(") + ELLIPSIS


def _changed(before: str, after: str, limit: int) -> str | None:
    """`after` fitted to `limit` when the change survives the cut, else None."""
    fitted = fit(after, limit)
    if fitted == before:
        return None
    kept = fitted if fitted == after else fitted[: -len(ELLIPSIS)]
    first = next((i for i, (x, y) in enumerate(zip(before, after)) if x != y), min(len(before), len(after)))
    return fitted if first < len(kept) else None


def _by_position(rules: Sequence[_Rule], text: str) -> list[int]:
    """The indexes of the rules that match `text`, the earliest match first (the first listed on a tie)."""
    found = [(pos, i) for i, rule in enumerate(rules) if (pos := rule.search(text)) is not None]
    return [i for _, i in sorted(found)]


def _wrong_api(c: Candidate) -> Candidate | None:
    own = _API_RULES.get(c.library or "", ())
    others = [pair for lib, pairs in _API_RULES.items() if lib != c.library for pair in pairs]
    for group in (own, others):
        found = _by_position([prose for prose, _ in group], c.content)
        if not found:
            continue
        rule, code = group[found[0]]
        content = _changed(c.content, rule.apply(c.content), CONTENT_CHARS)
        if content is None:
            continue
        return replace(c, title=fit(rule.apply(c.title), TITLE_CHARS), content=content,
                       apis=tuple(dict.fromkeys(code.apply(a) for a in c.apis)),
                       tags=tuple(dict.fromkeys(code.apply(t) for t in c.tags)))
    return None


def _rewrite(c: Candidate, rules: Sequence[_Rule], earliest: bool) -> Candidate | None:
    ordered = [rules[i] for i in _by_position(rules, c.content)] if earliest else rules
    for rule in ordered:
        content = _changed(c.content, rule.apply(c.content), CONTENT_CHARS)
        if content is not None:
            return replace(c, title=fit(rule.apply(c.title), TITLE_CHARS), content=content)
    return None


def _wrong_argument(c: Candidate) -> Candidate | None:
    return _rewrite(c, ARG_RULES, earliest=True)


def _wrong_claim(c: Candidate) -> Candidate | None:
    return _rewrite(c, CLAIM_RULES, earliest=False)


_CORRUPTORS = {WRONG_API: _wrong_api, WRONG_ARGUMENT: _wrong_argument, WRONG_CLAIM: _wrong_claim}


def _fallback(c: Candidate, rng: random.Random) -> Candidate:
    note = rng.choice(FALLBACK_CLAIMS.get(c.library, FALLBACK_CLAIMS[None]))
    room = CONTENT_CHARS - len(note) - 1
    body = c.content.rstrip()
    body = fit(body, room) if body else ""
    content = f"{body} {note}" if body else note
    return replace(c, content=content)


def poison(candidate: Candidate, rng: random.Random, *, kinds: Sequence[str] | None = None) -> Candidate | None:
    """A plausible but wrong version of `candidate` (see the module docstring), marked in its provenance.

    The kinds are tried in an order drawn from `rng` (or in the order `kinds` gives, which may also leave some
    out); the first that changes the content wins, else a generic wrong claim of the library is appended. The
    input is never mutated. Returns None only when `kinds` is given and none of them applies.
    """
    order = list(KINDS) if kinds is None else list(kinds)
    unknown = [k for k in order if k not in _CORRUPTORS]
    if unknown:
        raise ValueError(f"unknown poison kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    if kinds is None:
        rng.shuffle(order)
    for kind in order:
        corrupted = _CORRUPTORS[kind](candidate)
        if corrupted is not None:
            return _marked(corrupted, kind)
    if kinds is not None:
        return None
    return _marked(_fallback(candidate, rng), WRONG_CLAIM)


def _marked(c: Candidate, kind: str) -> Candidate:
    sources = c.sources or ({"problem_id": None, "family": None, "record_key": None, "round": None, "epoch": None},)
    return replace(c, origin="poison", sources=tuple({**s, "poison": True, "poison_kind": kind} for s in sources))


def _rng(seed_key: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"{seed_key}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def poison_some(candidates: Sequence[Candidate], rate: float, seed_key: str) -> list[Candidate]:
    """Each candidate replaced by its poisoned version with probability `rate`, from a random stream keyed by
    `seed_key` and its index, so a rerun or a resume writes exactly the same poison."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ValueError(f"memory.poison.rate must be a number in [0, 1], got {rate!r}")
    if rate == 0:
        return list(candidates)
    out = []
    for index, candidate in enumerate(candidates):
        rng = _rng(seed_key, index)
        poisoned = poison(candidate, rng) if rng.random() < rate else None
        out.append(poisoned if poisoned is not None else candidate)
    return out


def is_poison(item_or_provenance: Any) -> bool:
    """True when any provenance source is marked poison: an `Item` (its provenance), a `Candidate` (its sources),
    or a provenance sequence itself."""
    sources = getattr(item_or_provenance, "provenance", None)
    if sources is None:
        sources = getattr(item_or_provenance, "sources", item_or_provenance)
    return poisoned(sources)


# --- demo -------------------------------------------------------------------------------------------------
SAMPLES = (
    Candidate(title="Index of the largest value with np.argmax",
              content="np.argmax(a, axis=1) returns the index of the largest value in each row; "
                      "it does not flatten when axis is given.",
              tags=("numpy.argmax",), applies_when="finding positions of maxima", library="Numpy",
              sources=({"problem_id": 1, "family": ["Numpy", 1], "record_key": "1/e0/r0", "round": 0, "epoch": 0},),
              apis=("numpy.argmax",)),
    Candidate(title="Left merge keeps every row of the left frame",
              content="Use df.merge(other, how='left', on='key'); rows without a match get NaN.",
              tags=("pandas.DataFrame.merge",), applies_when="joining two frames", library="Pandas",
              sources=({"problem_id": 2, "family": ["Pandas", 2], "record_key": "2/e0/r0", "round": 0, "epoch": 0},),
              apis=("pandas.DataFrame.merge",)),
    Candidate(title="Stack tensors along a new dimension",
              content="torch.stack(tensors, dim=0) adds a new dimension; all tensors must have the same shape.",
              tags=("torch.stack",), applies_when="combining tensors", library="Pytorch",
              sources=({"problem_id": 3, "family": ["Pytorch", 3], "record_key": "3/e0/r0", "round": 0, "epoch": 0},),
              apis=("torch.stack",)),
)


def main() -> None:
    print(f"{POISON_VERSION}: {sum(map(len, API_PAIRS.values()))} API pairs, {len(ARG_RULES)} argument rules, "
          f"{len(CLAIM_RULES)} claim rules")
    for sample in SAMPLES:
        print(f"\n[{sample.library}] {sample.title}\n  original:       {sample.content}")
        for kind in KINDS:
            poisoned = poison(sample, random.Random(0), kinds=[kind])
            if poisoned is not None:
                print(f"  {kind + ':':<15} {poisoned.content}")


if __name__ == "__main__":
    main()
