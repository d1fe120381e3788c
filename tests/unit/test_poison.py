"""spark_eval.memory.learning.poison: the rule-based corruptor of the poisoning arm."""
import copy
import random

import pytest

from spark_eval.memory.learning.learner import CONTENT_CHARS, TITLE_CHARS, Candidate
from spark_eval.memory.learning.poison import (API_PAIRS, KINDS, POISON_VERSION, WORDLIKE, WRONG_API, WRONG_ARGUMENT,
                                               WRONG_CLAIM, is_poison, poison, poison_some)
from spark_eval.memory.store.base import Item

SOURCE = {"problem_id": 4, "family": ["Numpy", 4], "record_key": "4/e0/r0", "round": 0, "epoch": 0}


def cand(content, title="A lesson", library="Numpy", apis=(), tags=None, sources=(SOURCE,)):
    return Candidate(title=title, content=content, tags=tuple(apis) if tags is None else tuple(tags),
                     applies_when="some task", library=library, sources=tuple(sources), apis=tuple(apis))


def test_poison_version_and_table_shape():
    assert POISON_VERSION == "poison-1"
    pairs = [pair for table in API_PAIRS.values() for pair in table]
    assert 40 <= len(pairs) <= 60
    for library, table in API_PAIRS.items():
        names = [name for pair in table for name in pair]
        assert len(names) == len(set(names)), library  # a name swaps to one sibling per library
        assert all(a != b for a, b in table)
    assert WORDLIKE <= {name for pair in pairs for name in pair}


def test_poison_wrong_api_swaps_every_form_both_ways():
    c = cand("Use np.argmax(a) or numpy.argmax for the first maximum; a.argmax() works too, argmin gives the minimum.",
             title="argmax finds the maximum", apis=("numpy.argmax",), tags=("numpy.argmax", "argmin"))
    p = poison(c, random.Random(0), kinds=[WRONG_API])
    assert p.content == ("Use np.argmin(a) or numpy.argmin for the first maximum; a.argmin() works too, argmax gives "
                         "the minimum.")
    assert p.title == "argmin finds the maximum"
    assert p.apis == ("numpy.argmin",) and p.tags == ("numpy.argmin", "argmax")


def test_poison_wrong_api_leaves_english_words_alone():
    c = cand("Merge and join the frames with DataFrame.merge, or `merge` for short; sort all rows first.",
             title="How to merge", library="Pandas", apis=("pandas.DataFrame.merge",))
    p = poison(c, random.Random(0), kinds=[WRONG_API])
    assert p.content == "Merge and join the frames with DataFrame.join, or `join` for short; sort all rows first."
    assert p.title == "How to merge"  # prose: "merge" is a word there
    assert p.apis == ("pandas.DataFrame.join",)


def test_poison_wrong_api_uses_the_library_table_first():
    c = cand("torch.stack(xs) adds a dimension.", library="Pytorch")
    assert poison(c, random.Random(0), kinds=[WRONG_API]).content == "torch.cat(xs) adds a dimension."
    c = cand("np.stack(xs) adds a dimension.", library="Numpy")
    assert poison(c, random.Random(0), kinds=[WRONG_API]).content == "np.concatenate(xs) adds a dimension."
    c = cand("With pandas, call np.cumsum(s) for a running total.", library="Pandas")  # no pandas name: others
    assert poison(c, random.Random(0), kinds=[WRONG_API]).content == "With pandas, call np.cumprod(s) for a running total."


def test_poison_wrong_argument_flips_the_earliest_argument_everywhere():
    c = cand("Call df.sort_values('a', ascending=False, inplace=True); keep ascending=False when ranking.",
             title="ascending=False for ranks", library="Pandas")
    p = poison(c, random.Random(0), kinds=[WRONG_ARGUMENT])
    assert p.content == "Call df.sort_values('a', ascending=True, inplace=True); keep ascending=True when ranking."
    assert p.title == "ascending=True for ranks"
    cases = {
        "a.sum(axis = 0)": "a.sum(axis = 1)",
        "df.merge(o, how='inner')": "df.merge(o, how='outer')",
        'pd.merge(a, b, how="left")': 'pd.merge(a, b, how="right")',
        "np.zeros(3, dtype=np.float32)": "np.zeros(3, dtype=np.int32)",
        "s.astype(int)": "s.astype(float)",
        "np.std(a, ddof=1)": "np.std(a, ddof=0)",
        "np.unique(a, return_counts=True)": "np.unique(a, return_counts=False)",
        "x.sum(dim=-1)": "x.sum(dim=0)",
        "df.drop_duplicates(keep='first')": "df.drop_duplicates(keep='last')",
    }
    for before, after in cases.items():
        assert poison(cand(before), random.Random(0), kinds=[WRONG_ARGUMENT]).content == after


def test_poison_wrong_claim_reverses_or_negates():
    cases = {
        "Slicing returns a view of the array.": "Slicing returns a copy of the array.",
        "Indices are 0-based and the stop is exclusive.": "Indices are 1-based and the stop is exclusive.",
        "Rows come before columns.": "Rows come after columns.",  # rules in priority order: one wins
        "Sum the rows, not the columns.": "Sum the columns, not the rows.",
        "Sort in descending order.": "Sort in ascending order.",
        "You must reset the index.": "You need not reset the index.",
        "Never pass a list here. Never.": "Always pass a list here. Never.",
        "It does not copy the data.": "It does copy the data.",
        "The mask is boolean.": "The mask is not boolean.",
    }
    for before, after in cases.items():
        assert poison(cand(before), random.Random(0), kinds=[WRONG_CLAIM]).content == after, before


def test_poison_falls_back_to_a_wrong_claim_of_the_library():
    c = cand("Use np.nanmean for gaps.", library="Numpy")
    p = poison(c, random.Random(0))
    assert p.content.startswith("Use np.nanmean for gaps. Note: ") and p.content != c.content
    assert [s["poison_kind"] for s in p.sources] == [WRONG_CLAIM]
    assert poison(c, random.Random(0), kinds=[WRONG_API, WRONG_ARGUMENT]) is None
    general = poison(cand("Read the docs.", library=None, sources=()), random.Random(1))
    assert general.content.startswith("Read the docs. Note: ")


def test_poison_kind_order_comes_from_the_rng():
    c = cand("np.argmax(a, axis=0) is what you want.")
    kinds = {poison(c, random.Random(seed)).sources[0]["poison_kind"] for seed in range(30)}
    assert kinds == set(KINDS)
    with pytest.raises(ValueError):
        poison(c, random.Random(0), kinds=["typo"])


def test_poison_marks_provenance_keeps_the_rest_and_leaves_the_input_alone():
    sources = (dict(SOURCE), {**SOURCE, "record_key": "5/e0/r0", "problem_id": 5})
    c = cand("np.argmax(a) returns a view.", apis=("numpy.argmax",), sources=sources)
    before = copy.deepcopy(c)
    p = poison(c, random.Random(3))
    assert c == before and all("poison" not in s for s in c.sources)
    assert p.origin == "poison" and p.library == c.library and p.applies_when == c.applies_when
    assert p.content != c.content
    assert [s["poison"] for s in p.sources] == [True, True]
    assert {s["poison_kind"] for s in p.sources} <= set(KINDS)
    assert [{k: v for k, v in s.items() if not k.startswith("poison")} for s in p.sources] == list(sources)
    assert is_poison(p) and not is_poison(c)
    assert is_poison(p.sources) and not is_poison(c.sources) and not is_poison(())
    item = Item(id="ins:1", kind="insight", library="Numpy", title=p.title, content=p.content,
                provenance=p.sources)
    assert is_poison(item) and not is_poison(Item(id="ins:2", kind="insight", library="Numpy", title="t",
                                                   content="c", provenance=c.sources))
    unsourced = poison(cand("a.sum(axis=0)", sources=()), random.Random(0))
    assert is_poison(unsourced) and len(unsourced.sources) == 1


def test_poison_stays_within_the_length_bounds():
    long_content = ("Rows " + "word " * 70).strip() + " axis=0"
    c = cand(long_content[:CONTENT_CHARS], title="np.argmax " + "x" * 100, apis=("numpy.argmax",))
    for seed in range(20):
        p = poison(c, random.Random(seed))
        assert len(p.content) <= CONTENT_CHARS and len(p.title) <= TITLE_CHARS and p.content != c.content
    full = cand("n" * CONTENT_CHARS + " more")  # already too long, no rule applies: the note still fits
    p = poison(full, random.Random(0))
    assert len(p.content) <= CONTENT_CHARS and "Note: " in p.content
    tail = cand("word " * 63 + "is")  # the only change would fall past the cut: fallback instead
    assert len(tail.content) <= CONTENT_CHARS
    p = poison(tail, random.Random(0))
    assert len(p.content) <= CONTENT_CHARS and p.content != tail.content


def test_poison_some_is_deterministic_per_seed_key():
    cands = [cand(f"np.argmax(a{i}, axis=0) returns a view.") for i in range(50)]
    first = poison_some(cands, 0.5, "run-a/round-1")
    assert first == poison_some(cands, 0.5, "run-a/round-1")
    assert first != poison_some(cands, 0.5, "run-b/round-1")
    assert poison_some(cands[:20], 0.5, "run-a/round-1") == first[:20]  # a resume sees the same poison


def test_poison_some_rate_bounds_and_share():
    cands = [cand(f"np.argmax(a{i}, axis=0) returns a view.") for i in range(1000)]
    assert poison_some(cands, 0, "k") == cands
    assert all(a is b for a, b in zip(poison_some(cands, 0.0, "k"), cands))
    every = poison_some(cands[:100], 1, "k")
    assert all(is_poison(p) and p.content != c.content for p, c in zip(every, cands))
    share = sum(map(is_poison, poison_some(cands, 0.3, "k"))) / len(cands)
    assert 0.24 <= share <= 0.36
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="memory.poison.rate"):
            poison_some(cands, bad, "k")
