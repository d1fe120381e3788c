"""The memory's parts against scripted models: leakage guard, retrieval agent, learner, curation."""
import asyncio
import json
from dataclasses import replace

import pytest

from spark_eval.memory.agent import (RetrievalAgent, prompt_query, recommendation_reader, recommend_schema,
                                     search_libraries)
from spark_eval.memory.index import Hit
from spark_eval.memory.leakage import LeakGuard, overlap
from spark_eval.memory.learning.curator import CurationPolicy, Curator
from spark_eval.memory.learning.learner import Candidate, Learner, insight_id
from spark_eval.memory.store.base import Item
from spark_eval.memory.store.open import open_store
from spark_eval.memory.store.sqlite import SQLiteStore
from spark_eval.models.base import ModelCallError
from spark_eval.models.structured import ParseError
from spark_eval.records import read_lines
from tests.fakes.embedder import HashEmbedder
from tests.fakes.scripted import ScriptedModel

REFERENCE = "result = df.groupby('user')['value'].apply(list).reset_index(name='values')"


def test_leak_guard_flags_the_reference_and_not_advice_about_it():
    guard = LeakGuard(n=6, threshold=0.5)
    assert overlap(REFERENCE, REFERENCE) == 1.0
    assert guard.leaks("Try this:\n" + REFERENCE.replace(" ", "  "), REFERENCE)  # layout does not hide it
    assert not guard.leaks("Group with DataFrame.groupby and collect each group with apply(list).", REFERENCE)
    assert not guard.leaks("anything", "   ")
    assert overlap("x = 1", "x = 1") == 1.0  # shorter than n: one n-gram of its own length


class FakeRecall:
    """Two docs and one insight; records what it was asked."""

    def __init__(self):
        self.items = {
            "doc:pandas:pandas.DataFrame.groupby": Item("doc:pandas:pandas.DataFrame.groupby", "doc", "Pandas",
                                                        "pandas.DataFrame.groupby", "Group DataFrame using a mapper."),
            "doc:pandas:pandas.Series.apply": Item("doc:pandas:pandas.Series.apply", "doc", "Pandas",
                                                   "pandas.Series.apply", "Invoke function on values of Series."),
            "ins:1": Item("ins:1", "insight", "Pandas", "Collect groups", "Use apply(list) after groupby."),
        }
        self.asked = []

    def search(self, query, libraries, exclude_families, k):
        self.asked.append((query, None if libraries is None else tuple(libraries), tuple(exclude_families), k))
        if libraries is not None and "Pandas" not in libraries:
            return []
        ids = list(self.items)
        return [Hit(id=i, kind=self.items[i].kind, library="Pandas", score=1.0 / (60 + rank), bm25_rank=rank,
                    dense_rank=rank, bm25_score=1.0, dense_score=0.5) for rank, i in enumerate(ids[:k], 1)]

    def fetch(self, ids):
        return {i: self.items[i] for i in ids if i in self.items}


PLAN = json.dumps({"intent": "collect values per user", "library": "pandas",
                   "queries": ["groupby collect list", "Series.apply"], "avoid": "loops"})
ADVICE = json.dumps({"cited": [1, "[3]", 9], "advice": "Group by user, then apply(list)."})


def test_agent_plans_searches_and_cites(problems):
    model = ScriptedModel(replies=[PLAN, ADVICE])
    recall = FakeRecall()
    rec = asyncio.run(RetrievalAgent(model, per_query=3).recommend(problems[0], recall, ("Pandas/0",)))
    # the advice, then the names of the documents it cites (an insight's names are not vouched for)
    assert rec.error is None and rec.text == "Group by user, then apply(list).\nDocumentation cited: " \
                                             "`pandas.DataFrame.groupby`."
    assert rec.plan["library"] == "Pandas" and rec.plan["queries"] == ["groupby collect list", "Series.apply"]
    # the plan's queries, then the problem's statement
    assert [q for q, *_ in recall.asked] == [*rec.plan["queries"], prompt_query(problems[0].prompt)]
    assert [q["source"] for q in rec.trace["queries"]] == ["plan", "plan", "statement"]
    # the planned library first, then the others the problem's code imports
    assert all(libs == ("Pandas", "Numpy") and excl == ("Pandas/0",) for _, libs, excl, _ in recall.asked)
    cited = {i.id for i in rec.items if i.cited}
    # items are cited by the numbers they were shown under; a number it was not shown is not a citation
    assert [i.id for i in rec.items] == ["doc:pandas:pandas.DataFrame.groupby", "doc:pandas:pandas.Series.apply",
                                            "ins:1"]
    assert cited == {"doc:pandas:pandas.DataFrame.groupby", "ins:1"}
    assert [len(q["hits"]) for q in rec.trace["queries"]] == [3, 3, 3]
    assert rec.trace["usage"]["calls"] == 2
    second_prompt = model.sent[1][-1]["content"]
    assert "[3] (insight) Collect groups" in second_prompt and problems[0].prompt[:200] in second_prompt
    assert model.params[1].json_schema["properties"]["cited"]["items"]["enum"] == [1, 2, 3]


def test_citations_are_the_numbers_of_shown_items():
    read = recommendation_reader(["doc:a", "doc:b", "ins:7"])
    assert read({"cited": ["2", 2.0, "[3]", 7, "x", "nan", 1e999], "advice": "Use b."}) == {"text": "Use b.", "cited": ["doc:b", "ins:7"]}
    with pytest.raises(ParseError, match="at least one item number from 1 to 3"):
        read({"cited": [0, 4], "advice": "Use b."})
    assert recommendation_reader([])({"cited": [], "advice": "Nothing found; use numpy.nanmean."})["cited"] == []
    # the schema bounds what a constrained decoder can write: shown numbers only, at least one, short advice
    schema = recommend_schema(3)
    assert schema["properties"]["cited"]["minItems"] == 1 and schema["properties"]["advice"]["maxLength"] <= 600
    assert recommend_schema(0)["properties"]["cited"]["maxItems"] == 0


def test_search_libraries_take_the_plan_then_the_imports():
    code = "import numpy as np\nfrom scipy import sparse\n  import torch.nn\nimport os\n# import pandas"
    assert search_libraries("Pandas", code, "Numpy") == ["Pandas", "Numpy", "Scipy", "Pytorch"]
    assert search_libraries("Numpy", code, "Numpy") == ["Numpy", "Scipy", "Pytorch"]
    assert search_libraries(None, "x = 1", "Sklearn") == ["Sklearn"]


def test_agent_searches_every_library_when_the_planned_ones_have_nothing(problems):
    plan = json.dumps({"intent": "nan handling", "library": "numpy", "queries": ["np.nan", "np.nan ", "isnan"],
                       "avoid": ""})
    recall = FakeRecall()  # holds Pandas items only
    problem = problems[291]  # a NumPy problem whose code imports numpy alone
    rec = asyncio.run(RetrievalAgent(ScriptedModel(replies=[plan, ADVICE])).recommend(problem, recall, ()))
    assert rec.plan["queries"] == ["np.nan", "isnan"]  # repeated queries are searched once
    statement = prompt_query(problem.prompt)
    assert [(q, libs) for q, libs, *_ in recall.asked] == [("np.nan", ("Numpy",)), ("np.nan", None),
                                                           ("isnan", ("Numpy",)), ("isnan", None),
                                                           (statement, ("Numpy",)), (statement, None)]
    assert all(q["libraries"] is None and q["hits"] for q in rec.trace["queries"])


def test_a_plan_is_read_as_searches_for_names_and_never_as_its_own_format():
    from spark_eval.memory.agent import interpret_plan, query_of

    assert query_of("np.sum(a[:, :, 2])") == "np.sum"
    assert query_of("plt.plot(x, y, label='sin')") == "plt.plot"
    assert query_of("df.groupby('a')['b'].apply(list)") == "df.groupby apply"
    assert query_of("result = a[::2]") == "result = a[::2]"  # code without a name stays as it is
    assert query_of("numpy take_along_axis") == "numpy take_along_axis"
    plan = interpret_plan({"intent": "what the code must do, in one short sentence", "library": "numpy",
                           "queries": ["np.sum(a[:, :, 0])", "np.sum(a[:, :, 1])", "np.argmax"],
                           "avoid": "one short sentence on a mistake to steer clear of"})
    assert plan == {"intent": "", "library": "Numpy", "queries": ["np.sum", "np.argmax"], "avoid": ""}
    kept = interpret_plan({"intent": "sum along the last axis", "library": "numpy", "queries": ["np.sum"],
                           "avoid": "summing the flattened array"})
    assert kept["intent"] == "sum along the last axis" and kept["avoid"] == "summing the flattened array"


class CrowdedRecall(FakeRecall):
    """Five insights that outscore the two documents, as a small index's first hits do."""

    def __init__(self):
        super().__init__()
        for n in range(2, 7):
            self.items[f"ins:{n}"] = Item(f"ins:{n}", "insight", "Pandas", f"Lesson {n}",
                                          f"Lesson {n} says to call apply on each group of the frame {n}")

    def search(self, query, libraries, exclude_families, k):
        self.asked.append(query)
        ranked = [i for i in self.items if i.startswith("ins:")] + [i for i in self.items if i.startswith("doc:")]
        return [Hit(id=i, kind=self.items[i].kind, library="Pandas", score=1.0 / (60 + rank), bm25_rank=rank,
                    dense_rank=rank, bm25_score=1.0, dense_score=0.5) for rank, i in enumerate(ranked, 1)]


def test_documents_keep_their_place_and_an_uncited_copy_counts_as_used(problems):
    copy = json.dumps({"cited": [1], "advice": "Lesson 2 says to call apply on each group of the frame."})
    rec = asyncio.run(RetrievalAgent(ScriptedModel(replies=[PLAN, copy]), max_items=5, max_insights=2)
                      .recommend(problems[0], CrowdedRecall(), ()))
    kinds = [i.kind for i in rec.items]
    assert kinds.count("insight") == 2 and kinds.count("doc") == 2  # two insights at most, the documents follow
    assert [(i.id, i.cited, i.copied, i.used) for i in rec.items if i.used] == [
        ("ins:1", True, False, True), ("ins:2", False, True, True)]
    assert "Documentation cited" not in rec.text  # it cites no document
    assert {i.id: i.to_json().get("copied") for i in rec.items} == {
        "ins:1": None, "ins:2": True, "doc:pandas:pandas.DataFrame.groupby": None, "doc:pandas:pandas.Series.apply": None}
    from spark_eval.memory.learning.loop import outcomes
    from spark_eval.records import Record
    from tests.fakes.runs import record

    failed = replace(Record.from_json(record(0, "m", "spark", passed=False)), recommendation=rec)
    assert outcomes([failed]) == {"ins:1": (0, 1), "ins:2": (0, 1)}  # the copied insight shares the failure


def test_the_drafts_documents_are_shown_first_and_take_at_most_half_the_items(problems):
    """memory.retrieval.draft_apis: the documents of the APIs the coder's draft uses come before the searches' hits,
    at most max_items // 2 of them; a hit they duplicate is not shown twice."""
    recall = FakeRecall()
    drafted = ["doc:pandas:pandas.Series.apply", "doc:pandas:pandas.DataFrame.pivot", "doc:pandas:pandas.melt"]
    for name in drafted[1:]:
        recall.items[name] = Item(name, "doc", "Pandas", name.split(":")[-1], "Reshape.")
    hits = [Hit(i, "doc", "Pandas", 1.0, None, None, None, None) for i in drafted]
    rec = asyncio.run(RetrievalAgent(ScriptedModel(replies=[PLAN, ADVICE]), max_items=4)
                      .recommend(problems[0], recall, (), hits))
    shown = [i.id for i in rec.items]
    assert shown[:2] == drafted[:2] and len(shown) == len(set(shown)) == 4  # the searches found apply too
    assert "ins:1" in shown[2:]  # the lessons keep their place
    assert rec.trace["draft_documents"] == drafted
    plain = asyncio.run(RetrievalAgent(ScriptedModel(replies=[PLAN, ADVICE]), max_items=4)
                        .recommend(problems[0], FakeRecall(), ()))
    assert "draft_documents" not in plain.trace and plain.items[0].id == "doc:pandas:pandas.DataFrame.groupby"


def test_agent_retries_a_bad_plan_once_then_goes_without(problems):
    model = ScriptedModel(replies=["not json", "{\"queries\": 3}"])
    rec = asyncio.run(RetrievalAgent(model).recommend(problems[0], FakeRecall(), ()))
    assert rec.text == "" and rec.error.startswith("search plan unusable: \"queries\" must be a list")
    assert len(model.sent) == 2 and "could not be used: the reply holds no JSON object" in model.sent[1][-1]["content"]


def test_agent_recovers_from_one_bad_reply(problems):
    model = ScriptedModel(replies=["{\"intent\": ", PLAN, ADVICE])
    rec = asyncio.run(RetrievalAgent(model).recommend(problems[0], FakeRecall(), ()))
    assert rec.error is None and rec.trace["usage"]["calls"] == 3


def trace(problem, status="failed", key="0/e0/r0"):
    return {"key": f"m/spark/s0/{key}", "problem_id": problem.problem_id, "library": problem.library,
            "problem": problem.prompt, "advice": "use groupby", "code": "result = df", "status": status,
            "error_type": "AssertionError" if status == "failed" else None, "stderr_tail": "AssertionError: wrong",
            "verdicts": ["quality 2/5: misses the grouping"],
            "source": {"problem_id": problem.problem_id, "family": "Pandas/0", "record_key": key, "epoch": 0,
                       "round": 0}}


INSIGHTS = json.dumps({"insights": [
    {"library": "Pandas", "api": ["DataFrame.groupby", "Series.apply"], "title": "Collect groups into lists",
     "content": "After groupby, apply(list) gives one list per group.", "applies_when": "aggregating rows into lists"},
    {"library": "General", "api": [], "title": "", "content": "dropped: no title", "applies_when": ""}]})


def test_learner_shows_feedback_and_parses_insights(problems):
    model = ScriptedModel(replies=[INSIGHTS])
    candidates, calls = asyncio.run(Learner(model, traces_per_call=2).distill([trace(problems[0]), trace(problems[1])]))
    assert [c.title for c in candidates] == ["Collect groups into lists"] and candidates[0].library == "Pandas"
    assert candidates[0].apis == ("DataFrame.groupby", "Series.apply") and candidates[0].tags == candidates[0].apis
    assert len(candidates[0].sources) == 2 and calls[0]["error"] is None
    prompt = model.sent[0][-1]["content"]
    assert "result: failed (AssertionError)" in prompt and "quality 2/5: misses the grouping" in prompt
    assert "Never restate a problem" in prompt
    assert model.params[0].json_schema["properties"]["insights"]["maxItems"] == 2  # bounded: max_new, short fields


def test_learner_reply_that_cannot_be_parsed_adds_nothing(problems):
    model = ScriptedModel(replies=["I think you should", "still prose"])
    candidates, calls = asyncio.run(Learner(model).distill([trace(problems[0])]))
    assert candidates == [] and calls[0]["error"] == "the reply holds no JSON object" and calls[0]["raw"]


def candidate(title, content, key, family="Pandas/0", problem_id=0):
    return Candidate(title=title, content=content, tags=("t",), applies_when="", library="Pandas",
                     sources=({"problem_id": problem_id, "family": family, "record_key": key, "epoch": 0, "round": 0},))


@pytest.fixture
def curator(store_location):
    store = open_store(store_location)
    yield Curator(store, HashEmbedder(), CurationPolicy(duplicate_threshold=0.9, retire_margin=2, max_insights=3),
                  LeakGuard())
    store.close()


WHERE = {"epoch": 0, "round": 0}


def test_curation_merges_near_identical_insights_and_keeps_both_provenances(curator):
    a = candidate("Collect groups", "After groupby use apply list to collect each group", "1/e0/r0")
    b = candidate("Collect groups", "after groupby, use apply(list) to collect each group", "2/e0/r0", "Pandas/7", 2)
    c = candidate("Plot labels", "Pass label= to plot and call legend", "3/e0/r0")
    ops = curator.apply([a, b, c], {}, {}, WHERE)
    assert ops == {"ADD": 2, "MERGE": 1}
    merged = curator.store.get_items([insight_id(a.title, a.content)])[0]
    assert merged.endorsements == 2 and merged.families == ("Pandas/0", "Pandas/7")
    assert [p["record_key"] for p in merged.provenance] == ["1/e0/r0", "2/e0/r0"]
    assert [op["op"] for op in curator.store.ops()] == ["ADD", "MERGE", "ADD"]


def test_counters_follow_outcomes_and_harm_retires(curator):
    a = candidate("Collect groups", "After groupby use apply list", "1/e0/r0")
    curator.apply([a], {}, {}, WHERE)
    ident = insight_id(a.title, a.content)
    curator.apply([], {}, {ident: (1, 0), "ins:unknown": (5, 5)}, WHERE)
    assert (curator.store.get_items([ident])[0].helpful, curator.store.get_items([ident])[0].harmful) == (1, 0)
    ops = curator.apply([], {}, {ident: (0, 3)}, WHERE, graded=(16, 4))  # the stream fails 1 in 5
    item = curator.store.get_items([ident])[0]
    assert (item.helpful, item.harmful, item.status) == (1, 3, "retired") and ops == {"UPDATE": 1, "RETIRE": 1}
    retired = curator.store.ops()[-1]["detail"]
    assert retired["base_fail_rate"] == 0.2 and retired["excess_harm"] == 2.2  # 3 failures where 0.8 were expected


def test_a_weak_coders_usual_failures_do_not_retire_an_insight(curator):
    a = candidate("Collect groups", "After groupby use apply list", "1/e0/r0")
    curator.apply([a], {}, {}, WHERE)
    ident = insight_id(a.title, a.content)
    ops = curator.apply([], {}, {ident: (1, 3)}, WHERE, graded=(2, 18))  # 9 in 10 fail with or without it
    assert ops == {"UPDATE": 1} and curator.store.get_items([ident])[0].status == "active"
    assert curator.store.get_meta("graded_outcomes") == [2, 18]
    # the base rate accumulates: a stronger stream later makes the same record of failures harmful
    ops = curator.apply([], {}, {ident: (0, 3)}, WHERE, graded=(78, 2))
    assert ops == {"UPDATE": 1, "RETIRE": 1} and curator.store.get_meta("graded_outcomes") == [80, 20]


def test_a_retired_insight_proposed_again_stays_retired(curator):
    a = candidate("Collect groups", "After groupby use apply list", "1/e0/r0")
    curator.apply([a], {}, {}, WHERE)
    ident = insight_id(a.title, a.content)
    curator.apply([], {}, {ident: (1, 3)}, WHERE, graded=(16, 4))
    again = candidate("Collect groups", "After groupby use apply list", "5/e0/r0", "Pandas/5", 5)
    ops = curator.apply([again], {}, {}, {"epoch": 0, "round": 1})
    item = curator.store.get_items([ident])[0]
    assert ops == {"REJECT": 1} and (item.status, item.helpful, item.harmful) == ("retired", 1, 3)
    assert [p["record_key"] for p in item.provenance] == ["1/e0/r0"]  # nothing merged into it either
    rejected = curator.store.ops()[-1]
    assert rejected["op"] == "REJECT" and rejected["item_id"] == ident
    assert rejected["detail"]["reason"] == "proposed again, but retired" and rejected["detail"]["harmful"] == 3
    # the same insight under other circumstances (its vector moves away): its id is still the retired one
    reworded = Candidate(title=a.title, content=a.content, tags=("x",), library="Pandas", sources=again.sources,
                         applies_when="zebra quantum violin harbour lantern orchid meteor saddle")
    assert curator.apply([reworded], {}, {}, WHERE) == {"REJECT": 1}
    assert curator.store.get_items([ident])[0].status == "retired"


def test_an_outage_of_the_learner_raises_instead_of_learning_nothing(problems):
    with pytest.raises(ModelCallError):
        asyncio.run(Learner(ScriptedModel(replies=["!fail"])).distill([trace(problems[0])]))


def test_an_outage_of_the_agent_raises_instead_of_advising_nothing(problems):
    with pytest.raises(ModelCallError):
        asyncio.run(RetrievalAgent(ScriptedModel(replies=[PLAN, "!fail"])).recommend(problems[0], FakeRecall(), ()))


def test_size_cap_retires_the_weakest_and_literal_solutions_are_rejected(curator):
    words = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]
    cands = [candidate(f"Insight {w}", f"content about {w} only", f"{i}/e0/r0") for i, w in enumerate(words)]
    leak = candidate("Answer", "Just write: " + REFERENCE, "9/e0/r0", problem_id=9)
    ops = curator.apply([*cands, leak], {9: REFERENCE}, {}, WHERE)
    assert ops == {"ADD": 4, "RETIRE": 1, "REJECT": 1}
    assert curator.store.count(kind="insight") == 3


API_NAMES = {"Pandas": ["pandas.DataFrame.groupby", "pandas.core.groupby.DataFrameGroupBy.agg", "pandas.melt"],
             "Numpy": ["numpy.argsort", "numpy.nanmean", "numpy.ndarray.reshape"]}


def test_the_screen_wants_a_documented_api_and_no_echo_of_the_harness():
    from spark_eval.memory.learning.experience import harness_texts
    from spark_eval.memory.learning.screen import InsightScreen
    from spark_eval.judge.quality import QUALITY_RUBRIC

    screen = InsightScreen(API_NAMES, harness_texts())
    ok = "Sort indices with np.argsort(a, kind='stable') to keep ties in order."
    assert screen.apis("Numpy", [], ok) == ["np.argsort"]
    assert screen.apis("Pandas", ["groupby"], "") == ["groupby"]  # a bare name the library documents
    assert screen.apis("Pandas", [], "Call df.melt(id_vars=...) first.") == ["df.melt"]  # a method on a variable
    assert screen.apis("Numpy", ["np.sortt", "pandas.melt"], "Use loops.") == []  # misspelt, or another library's
    assert screen.apis(None, ["pandas.melt"], "") == ["pandas.melt"]  # General: any library's
    assert screen.reason("Numpy", [], ok, []) is None
    assert "names no API" in screen.reason("Numpy", [], "Be careful with the data and think about edge cases.", [])
    rubric_echo = "numpy.argsort: " + QUALITY_RUBRIC.splitlines()[0]
    assert "repeats the harness's prompts or rubrics" in screen.reason("Numpy", ["numpy.argsort"], rubric_echo, [])
    from spark_eval.data.ds1000 import DS1000  # the run's benchmark adds its coder conversation

    coder_echo = "numpy.argsort: " + DS1000.prompts[0].split("TensorFlow). ")[1]
    assert screen.reason("Numpy", ["numpy.argsort"], coder_echo, []) is None
    with_coder = InsightScreen(API_NAMES, harness_texts(DS1000.prompts))
    assert "repeats the harness's prompts or rubrics" in with_coder.reason("Numpy", ["numpy.argsort"], coder_echo, [])
    problem = "I have a 2D array and I want the indices that would sort each row in descending order please"
    copied = "numpy.argsort: I want the indices that would sort each row in descending order"
    assert "restates its problem's text" in screen.reason("Numpy", [], copied, [problem])


def test_curation_logs_what_the_screen_rejects(tmp_path):
    from spark_eval.memory.learning.screen import InsightScreen

    store = SQLiteStore(tmp_path / "store.sqlite")
    curator = Curator(store, HashEmbedder(), CurationPolicy(), LeakGuard(), InsightScreen(API_NAMES, []))
    good = replace(candidate("Group then aggregate", "Use DataFrame.groupby(key).agg(list) to collect rows per key.",
                             "1/e0/r0"), applies_when="collecting a column's values per key")
    vague = replace(candidate("Be careful", "Read the problem and test the code on edge cases.", "2/e0/r0"),
                    applies_when="any problem")
    assert curator.apply([good, vague], {}, {}, WHERE) == {"ADD": 1, "REJECT": 1}
    rejected = store.ops()[-1]
    assert rejected["detail"]["reason"].startswith("screen: names no API") and rejected["detail"]["title"] == "Be careful"
    store.close()


def test_a_poisoners_lessons_pass_the_screen_only_when_told_to(tmp_path):
    """memory.poison.past_screen: an adversary's lessons skip the screen (what outcomes alone must then catch);
    an honest lesson the screen rejects is still rejected, and without the setting poison is screened as any."""
    from spark_eval.memory.learning.screen import InsightScreen

    vague = replace(candidate("Be careful", "Read the problem and test the code on edge cases.", "2/e0/r0"),
                    applies_when="any problem")
    bad = replace(vague, title="Be wary", sources=({**vague.sources[0], "poison": True, "poison_kind": "wrong_claim"},))
    for past, ops in ((True, {"ADD": 1, "REJECT": 1}), (False, {"REJECT": 2})):
        store = SQLiteStore(tmp_path / f"store{past}.sqlite")
        policy = CurationPolicy(poison_past_screen=past)
        curator = Curator(store, HashEmbedder(), policy, LeakGuard(), InsightScreen(API_NAMES, []))
        assert curator.apply([vague, bad], {}, {}, WHERE) == ops
        added = store.items(kind="insight")
        assert [i.title for i in added] == (["Be wary"] if past else [])
        store.close()


def test_the_screen_keeps_only_lessons_true_to_the_attempts_they_came_from():
    from spark_eval.memory.learning.learner import REPLY_PLACEHOLDERS
    from spark_eval.memory.learning.screen import InsightScreen, SourceFacts, code_names

    screen = InsightScreen(API_NAMES, [], placeholders=REPLY_PLACEHOLDERS)
    met = code_names("idx = np.argsort(a, axis=1)[:, ::-1]\nprint(len(idx))")
    assert met == {"argsort", "len", "print"}
    numpy = SourceFacts("Numpy", "Sort each row of a 2D array in descending order.", met)
    pandas = SourceFacts("Pandas", "Group the rows of a frame by a key column.", frozenset({"groupby", "agg"}))
    lesson = {"title": "Descending order with np.argsort", "applies_when": "ranking the values of each row",
              "content": "np.argsort(a, axis=1) sorts ascending; reverse its columns with [:, ::-1] for descending."}

    def reason(library="Numpy", names=("numpy.argsort",), sources=(numpy,), **fields):
        f = {**lesson, **fields}
        text = "\n".join((f["title"], f["content"], f["applies_when"]))
        return screen.reason(library, list(names), text, [], sources=list(sources), **f)

    assert reason() is None
    assert reason(sources=(pandas, numpy)) is None  # one of its attempts is of its library
    assert "placeholder ('the kind of task')" in reason(applies_when="The kind of task is sorting rows")
    assert "placeholder ('...')" in reason(title="...")
    assert reason(applies_when="") is None  # it says nothing of when; the lesson can still be true
    assert screen.echoed_when(lesson["title"], lesson["content"], "Descending order with np.argsort")
    assert screen.echoed_when(lesson["title"], lesson["content"], "np.argsort(a, axis=1) sorts ascending")
    assert not screen.echoed_when(lesson["title"], lesson["content"], lesson["applies_when"])
    assert reason(library=None) == "filed under General, not a library"
    assert reason(library="Numpy", sources=(pandas,)) == "filed under Numpy, learned from Pandas problems"
    # filed under the first library a small learner was shown, its APIs tell which of its attempts' it is about
    assert screen.library_of("Pandas", ["numpy.argsort"], lesson["content"], [numpy]) == "Numpy"
    assert screen.library_of("Numpy", ["numpy.argsort"], lesson["content"], [pandas]) == "Numpy"  # pandas has none
    assert screen.library_of("Numpy", ["numpy.argsort"], lesson["content"], [numpy, pandas]) == "Numpy"
    assert screen.library_of("Numpy", [], "Use df.melt(id_vars=k).", [numpy, pandas]) == "Pandas"
    assert screen.library_of(None, [], "Use df.melt(id_vars=k).", [numpy, pandas]) == "Pandas"
    assert reason(title="How to use NumPy's nanmean", names=("numpy.argsort", "numpy.nanmean")) == \
        "title and content are about different APIs (nanmean vs argsort)"
    invented = reason(content="Use np.nanmean(a) to ignore the missing values before ranking them.",
                      title="Ignore missing values")
    assert invented == "its content names no API its source attempts met (nanmean)"
    assert reason(content="Sort the rows carefully and reverse them.", names=()) == \
        "names no API that the documentation of Numpy has"
    # a documented API said not to exist is false by the documentation, in its own sentence or the one before
    denial = "Use the `np.argsort` function. This function is not a standard method in NumPy and should be avoided."
    assert reason(content=denial) == "says a documented API does not exist (np.argsort)"
    assert reason(content="np.argsort(a, axis=1) sorts each row; np.sortrows does not exist.") is None


def test_a_lesson_keeps_the_attempts_of_its_library_and_a_rejected_poison_is_marked(tmp_path):
    from spark_eval.memory.learning.curator import own_sources
    from spark_eval.memory.learning.learner import REPLY_PLACEHOLDERS
    from spark_eval.memory.learning.screen import InsightScreen, SourceFacts

    facts = {1: SourceFacts("Pandas", "Group rows.", frozenset({"groupby", "agg", "melt"})),
             2: SourceFacts("Numpy", "Sort rows.", frozenset({"argsort"}))}
    sources = tuple({"problem_id": i, "family": f"x/{i}", "record_key": f"{i}/e0/r0", "epoch": 0, "round": 0}
                    for i in (1, 2))
    good = Candidate(title="Group then aggregate", content="Use df.groupby(key).agg(list) to collect rows per key.",
                     tags=("DataFrame.groupby",), applies_when="collecting a column's values per key",
                     library="Pandas", sources=sources, apis=("DataFrame.groupby",))
    assert [s["problem_id"] for s in own_sources(good, facts).sources] == [1]
    poison = replace(good, title="Sorting", content="Use np.argsort(a) to sort a frame's rows.", library="Numpy",
                     apis=("numpy.argsort",), tags=("numpy.argsort",),
                     sources=tuple({**s, "poison": True, "poison_kind": "wrong_api"} for s in sources[:1]))
    store = SQLiteStore(tmp_path / "store.sqlite")
    curator = Curator(store, HashEmbedder(), CurationPolicy(), LeakGuard(),
                      InsightScreen(API_NAMES, [], placeholders=REPLY_PLACEHOLDERS))
    misfiled = replace(good, title="Melt wide columns", content="Use pd.melt(df, id_vars=key) to turn columns into rows.",
                       library="Numpy", apis=("pandas.melt",), tags=("pandas.melt",), applies_when="wide to long")
    assert curator.apply([good, poison, misfiled], {}, {}, WHERE, facts=facts) == {"ADD": 2, "REJECT": 1}
    assert {i.title: i.library for i in store.items(kind="insight")} == {good.title: "Pandas", misfiled.title: "Pandas"}
    assert [op["detail"].get("filed_under") for op in store.ops() if op["op"] == "ADD"] == [None, "Numpy"]
    kept = next(i for i in store.items(kind="insight") if i.title == good.title)
    assert [s["problem_id"] for s in kept.provenance] == [1]
    rejected = next(op for op in store.ops() if op["op"] == "REJECT")["detail"]
    assert rejected["reason"] == "screen: filed under Numpy, learned from Pandas problems"
    assert rejected["poison"] == "wrong_api" and rejected["applies_when"] == good.applies_when
    # an applies_when that repeats the title says nothing: the lesson is kept without it, and the log says so
    echo = replace(good, title="Total per key", content="Use df.groupby(k).agg('sum') to total each key's rows.",
                   applies_when="Total per key")
    assert curator.apply([echo], {}, {}, WHERE, facts=facts) == {"ADD": 1}
    assert next(i for i in store.items(kind="insight") if i.title == "Total per key").meta["applies_when"] == ""
    assert store.ops()[-1]["detail"]["applies_when_dropped"] is True
    store.close()


DS1000_PROMPT = """Problem:
I have the following DataFrame:
    Col1  Col2  Type
0      1     2     1
1      4     5     2

I would like to shuffle the order of the DataFrame's rows according to a list.
How can I achieve this?

A:
<code>
import pandas as pd
df = pd.DataFrame({'Col1': [1, 4], 'Col2': [2, 5], 'Type': [1, 2]})
</code>
result = ... # put solution in this variable
BEGIN SOLUTION
<code>
"""
MATPLOTLIB_PROMPT = """import numpy as np
import matplotlib.pyplot as plt

x = np.arange(10)
plt.plot(x, x)

# how to turn on minor ticks on x axis only
# SOLUTION START
"""


def test_raw_rag_searches_the_statement_without_data_lines_or_boilerplate():
    assert prompt_query(DS1000_PROMPT) == (
        "I have the following DataFrame: Col1  Col2  Type I would like to shuffle the order of the DataFrame's rows "
        "according to a list. How can I achieve this?")
    # no statement before a code block: the code and its asking comment, whole, less the boilerplate
    assert prompt_query(MATPLOTLIB_PROMPT) == ("import numpy as np import matplotlib.pyplot as plt x = np.arange(10) "
                                               "plt.plot(x, x) # how to turn on minor ticks on x axis only")
    assert prompt_query(DS1000_PROMPT, cap=20) == "I have the following"


def test_a_merge_keeps_the_same_problem_from_two_coders_as_two_sources(curator):
    a = candidate("Collect groups", "After groupby use apply list", "1/e0/r0")
    b = Candidate(title=a.title, content=a.content, tags=a.tags, applies_when="", library="Pandas",
                  sources=({**a.sources[0], "model": "other-coder"},))
    curator.apply([a], {}, {}, WHERE)
    curator.apply([b], {}, {}, WHERE)
    merged = curator.store.get_items([insight_id(a.title, a.content)])[0]
    assert merged.contributors == ("other-coder",) and len(merged.provenance) == 2


def test_a_learning_round_curates_its_records_once_and_leaves_a_health_row(problems, tmp_path):
    from dataclasses import asdict

    from spark_eval.config import LearningConfig
    from spark_eval.memory.learning.loop import LearningLoop, trace_key
    from spark_eval.records import Record
    from tests.fakes.runs import record

    lesson = {"library": "Pandas", "api": ["DataFrame.groupby"], "title": "Group, then collect",
              "content": "Use DataFrame.groupby(key).agg(list) to collect the rows of each key.", "applies_when": ""}
    model = ScriptedModel(replies=[json.dumps({"insights": [lesson]})])
    store = SQLiteStore(tmp_path / "memory" / "store.sqlite")
    loop = LearningLoop(store.path, None, True, asdict(LearningConfig(screen=False)), 0.0, LeakGuard(), lambda: model,
                        None, tmp_path / "memory")
    loop.attach(store, HashEmbedder(), problems[:3], {})
    shown = {"text": "advice", "items": [{"id": "ins:old", "kind": "insight", "score": 0.5, "cited": True}]}
    records = [Record.from_json({**record(p.problem_id, "m", "spark", passed=i != 1, library=p.library),
                                 "recommendation": shown}) for i, p in enumerate(problems[:3])]
    asyncio.run(loop.round(records, 0, 0))
    asyncio.run(loop.round(records, 0, 1))  # the same records again (a resume): learned already, nothing asked
    keys = {trace_key(r) for r in records}
    assert len(model.sent) == 1 and store.known_traces(sorted(keys)) == keys
    assert [i.title for i in store.items(kind="insight")] == ["Group, then collect"]
    assert store.get_meta("graded_outcomes") == [2, 1]  # the round's base rate: two passed, one failed
    assert [(h["round"], h["records_seen"], h["ops"]) for h in loop.health] == [(0, 3, {"ADD": 1})]
    assert [h["round"] for h in read_lines(tmp_path / "memory" / "health.jsonl")] == [0]
    store.close()


def test_the_screen_knows_what_a_rounds_attempts_met(tmp_path, problems):
    """Per problem: its library and text, and the APIs its attempts met: the documents shown, the names its code
    calls, the reference solution's labelled APIs (problem 0's reference reads `df.iloc`)."""
    from spark_eval.memory.learning.loop import LearningLoop, trace_of
    from spark_eval.records import Record
    from tests.fakes.runs import record

    loop = LearningLoop(str(tmp_path / "store.sqlite"), None, True, {}, 0.0, LeakGuard(), lambda: None, None, None)
    loop.problems = {0: problems[0]}
    loop.documented = {"Pandas": frozenset({"pandas.DataFrame.iloc", "pandas.DataFrame.groupby"})}
    shown = {"text": "advice", "items": [{"id": "doc:pandas:pandas.DataFrame.groupby#overview", "kind": "doc",
                                          "score": 0.5, "cited": True},
                                         {"id": "ins:1", "kind": "insight", "score": 0.4, "cited": False}]}
    attempt = Record.from_json({**record(0, "m", "spark", library="Pandas"), "recommendation": shown,
                                "code": "result = df.pivot_table(index='a').reset_index()"})
    facts = loop.source_facts([attempt])[0]
    assert facts.library == "Pandas" and facts.text == problems[0].prompt
    assert facts.apis == {"groupby", "pivot_table", "reset_index", "iloc"}
    assert trace_of(attempt, problems[0])["documents"] == ["pandas.DataFrame.groupby"]


def test_paired_harm_weighs_each_use_against_the_coder_without_memory(tmp_path):
    """A use that turns the baseline's pass into a failure is harm, a failure into a pass help; the same outcome
    both ways moves nothing; an insight is retired when harm - help reaches the margin, whatever the base rate."""
    from spark_eval.memory.learning.loop import baseline_outcomes, paired_outcomes
    from spark_eval.memory.base import MemoryConfigError
    from spark_eval.records import Record
    from tests.fakes.runs import record, write_run

    def used(problem_id, passed, insight):
        advice = {"text": "advice", "items": [{"id": insight, "kind": "insight", "score": 0.5, "cited": True}]}
        return Record.from_json({**record(problem_id, "m", "spark", passed=passed), "recommendation": advice})

    baseline = {("m", 1): True, ("m", 2): True, ("m", 3): False, ("m", 4): False}
    records = [used(1, False, "ins:bad"), used(2, False, "ins:bad"), used(3, False, "ins:bad"),
               used(3, True, "ins:good"), used(4, False, "ins:good"), used(9, False, "ins:good")]
    assert paired_outcomes(records, baseline) == {"ins:bad": (0, 2), "ins:good": (1, 0)}

    store = SQLiteStore(tmp_path / "store.sqlite")
    for name in ("bad", "good"):
        store.put_items([Item(f"ins:{name}", "insight", "Pandas", name, f"Use df.{name}() to {name}.")])
    curator = Curator(store, HashEmbedder(), CurationPolicy(retire_margin=2, harm="paired"), LeakGuard())
    ops = curator.apply([], {}, paired_outcomes(records, baseline), WHERE, graded=(1, 5))
    assert ops == {"UPDATE": 2, "RETIRE": 1}
    [retired] = store.items(kind="insight", status="retired")
    assert retired.id == "ins:bad" and store.ops()[-1]["detail"]["harm"] == "paired"
    store.close()

    none_run = write_run(tmp_path / "none", [record(1, "m", "none", passed=True), record(3, "m", "none", passed=False)])
    assert baseline_outcomes([str(none_run)]) == {("m", 1): True, ("m", 3): False}
    spark_run = write_run(tmp_path / "spark", [record(1, "m", "spark")])
    with pytest.raises(MemoryConfigError, match="is a memory=spark run"):
        baseline_outcomes([str(spark_run)])
    with pytest.raises(MemoryConfigError, match=r"set memory.learning.baseline=\["):
        baseline_outcomes([])
    with pytest.raises(MemoryConfigError, match="holds no records.jsonl"):
        baseline_outcomes([str(tmp_path / "nowhere")])
