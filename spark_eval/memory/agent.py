"""The retrieval agent: plan searches for a problem, run them over docs and insights, write cited advice."""
from __future__ import annotations

import re
from dataclasses import asdict, replace
from typing import Any, Callable, Collection, Protocol, Sequence

from spark_eval.types import LIBRARIES
from spark_eval.types import LIBRARY_MODULES
from spark_eval.memory.docs.apilabels import DOTTED
from spark_eval.memory.index import Hit
from spark_eval.memory.leakage import word_ngrams
from spark_eval.memory.store.base import Item
from spark_eval.models.base import ChatModel, Message
from spark_eval.models.calls import Call, tokens
from spark_eval.models.structured import ParseError, ask_json, integer_in, text_field
from spark_eval.types import Problem
from spark_eval.records import Recommendation, RetrievedItem

# Bump when a prompt, a schema or how citations are read changes: the version goes into every record of a memory run.
AGENT_VERSION = "agent-9"
DRAFT_VERSION = "draft-1"
"""The agent's reading of the coder's draft (`memory.retrieval.draft_apis`): the documents of its APIs shown first."""

# Every field is bounded (schema-constrained decoding closes a string at its bound; other providers take the
# bounds as guidance), so a reply cannot run to its token cap: a small model otherwise repeats itself until it does.
INTENT_CHARS, QUERY_CHARS, AVOID_CHARS, ADVICE_CHARS = 160, 60, 160, 600
MAX_QUERIES, MAX_CITED = 4, 3
MAX_INSIGHTS_SHOWN = 2
"""Insights among the items shown for the advice, at most (the documentation fills the rest)."""
COPY_WORDS = 8
"""A run of this many words shared by the advice and an item it was shown counts the item as used, cited or not."""
PLAN_ECHO_WORDS = 4
"""A plan's intent or pitfall sharing a run of this many words with the plan's prompt was copied from its format."""
STATEMENT_CHARS = 2000
STATEMENT_WEIGHT = 2.0
"""The statement's hits count this many times a planned query's when the agent ranks what it found (the statement
finds the reference's APIs more often than a small planner's queries do)."""

PLAN_SYSTEM = (
    "You plan searches in a shared memory that holds the documentation of NumPy, pandas, Matplotlib, SciPy, "
    "scikit-learn, PyTorch and TensorFlow, and lessons learned on earlier coding problems. You do not solve "
    "the problem."
)
PLAN_PROMPT = """\
A coding agent must solve the problem below. Plan what to look up for it.

<problem>
{problem}
</problem>

Reply with a JSON object:
- "intent": what the code must do, in one short sentence;
- "library": the main library, one of {libraries};
- "queries": 2 to {max_queries} search queries, each the full dotted name of a function, method or class that this code needs, not code;
- "avoid": one short sentence on a mistake to steer clear of."""
_PLAN_GRAMS = frozenset(word_ngrams(PLAN_PROMPT.split("</problem>", 1)[1], PLAN_ECHO_WORDS))

RECOMMEND_SYSTEM = (
    "You advise a coding agent using items retrieved from a shared memory of documentation and experience. "
    "You name the functions to use, how to call them and the pitfalls. You never write the whole solution."
)
RECOMMEND_PROMPT = """\
<problem>
{problem}
</problem>

Search plan: {intent}
Avoid: {avoid}

Retrieved items:
{items}

First pick the numbers of the items (at most {max_cited}) that help most with this problem. Then write advice
of at most 80 words for the coding agent, based on those items: the approach, the exact API names and
arguments to use, and one pitfall. Reply with a JSON object: {{"cited": [<item numbers>], "advice": "..."}}"""

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "maxLength": INTENT_CHARS},
        "library": {"type": "string", "enum": list(LIBRARIES)},
        "queries": {"type": "array", "items": {"type": "string", "maxLength": QUERY_CHARS}, "minItems": 2,
                    "maxItems": MAX_QUERIES},
        "avoid": {"type": "string", "maxLength": AVOID_CHARS},
    },
    "required": ["intent", "library", "queries", "avoid"],
}


def recommend_schema(shown: int) -> dict[str, Any]:
    """The recommendation's schema for `shown` numbered items: the citations are their numbers (at least one
    when any was shown), the advice is bounded."""
    cited: dict[str, Any] = {"type": "array", "maxItems": MAX_CITED if shown else 0}
    if shown:
        cited.update(items={"type": "integer", "enum": list(range(1, shown + 1))}, minItems=1)
    return {"type": "object",
            "properties": {"cited": cited, "advice": {"type": "string", "maxLength": ADVICE_CHARS}},
            "required": ["cited", "advice"]}


class Recall(Protocol):
    """What the agent searches: hybrid search, then the items behind the hits."""

    def search(self, query: str, libraries: Collection[str] | None, exclude_families: Collection[str],
               k: int) -> list[Hit]: ...

    def fetch(self, ids: Sequence[str]) -> dict[str, Item]: ...


def interpret_plan(reply: dict[str, Any]) -> dict[str, Any]:
    """The plan with 1-4 distinct non-empty queries and the library mapped onto DS-1000's names (None if unknown)."""
    queries = reply.get("queries")
    if not isinstance(queries, list):
        raise ParseError('"queries" must be a list of strings')
    queries = list(dict.fromkeys(query_of(q.strip()) for q in queries if isinstance(q, str) and q.strip()))
    queries = queries[:MAX_QUERIES]
    if not queries:
        raise ParseError('"queries" must hold at least one non-empty string')
    names = {name.lower(): name for name in LIBRARIES}
    library = str(reply.get("library") or "").strip().lower()
    return {"intent": _own(reply.get("intent")), "library": names.get(library),
            "queries": queries, "avoid": _own(reply.get("avoid"))}


_CODE = re.compile(r"[()\[\]=]")
_CALLED = re.compile(r"[A-Za-z_][\w.]*(?=\s*\()")


def query_of(query: str) -> str:
    """A query written as code is searched by the names it calls or reaches through a dot (`np.sum(a[:, :, 2])` ->
    `np.sum`; `plt.plot(x, y, label='sin')` -> `plt.plot`): its arguments and data match nothing in the
    documentation. A query without code, or code without a name, stays as it is."""
    if not _CODE.search(query):
        return query
    names = [n.strip(".") for n in _CALLED.findall(query) + DOTTED.findall(query)]
    return " ".join(dict.fromkeys(n for n in names if n)) or query


def _own(field: Any) -> str:
    """A plan's free-text field, or "" when it copies the plan prompt's description of the field."""
    text = str(field or "").strip()
    return "" if word_ngrams(text, PLAN_ECHO_WORDS) & _PLAN_GRAMS else text


_IMPORT = re.compile(r"^[ \t]*(?:import|from)[ \t]+([A-Za-z_]\w*)", re.M)
_BY_MODULE = {module: name for name, module in LIBRARY_MODULES.items()}


def search_libraries(planned: str | None, text: str, fallback: str) -> list[str]:
    """The libraries a plan's searches are filtered to: the planned one, then those the problem's code imports.

    A small planner often names the wrong library (the first of the list it was shown); the imports in the
    problem, which the planner saw too, keep its searches on the libraries the problem uses. `fallback` (the
    problem's library) when neither gives one.
    """
    found = [planned] if planned else []
    found += [_BY_MODULE[m] for m in _IMPORT.findall(text) if m in _BY_MODULE]
    return list(dict.fromkeys(found)) or [fallback]


def recommendation_reader(shown: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Reads a recommendation whose citations are the numbers of the `shown` items (1-based): the advice and
    the cited ids. A number outside the list is not a citation; citing none when items were shown is an error."""

    def interpret(reply: dict[str, Any]) -> dict[str, Any]:
        cited = reply.get("cited")
        if not isinstance(cited, list):
            raise ParseError('"cited" must be a list of item numbers')
        ids = []
        for number in cited:
            try:  # 3, 3.0, "3" and "[3]" are item 3; anything else is skipped
                index = integer_in(str(number).strip().strip("[]"), 1, len(shown), "cited")
            except ParseError:
                continue
            if shown[index - 1] not in ids:
                ids.append(shown[index - 1])
        if shown and not ids:
            raise ParseError(f'"cited" must hold at least one item number from 1 to {len(shown)}')
        return {"text": text_field(reply, "advice"), "cited": ids}

    return interpret


CITED_LINE = "\nDocumentation cited: "
"""Starts the line the agent appends to the model's advice: the names of the documents it cited or copied from."""


def own_words(advice: str) -> str:
    """The model's advice without the line of cited documents the agent appended (`CITED_LINE`): what the advice
    itself says, which `api_hits` checks (the appended names would credit the model with the documents it was
    shown)."""
    cut = advice.rfind(CITED_LINE)
    return advice if cut < 0 else advice[:cut]


class RetrievalAgent:
    """Plan -> hybrid search per query -> recommendation citing the shown items by number; the whole trace is kept.

    Args:
        model: the agent's ChatModel (configured apart from the coder's).
        per_query: hits kept per query.
        max_items: items shown to the model for the recommendation.
        item_chars: characters of each item's content shown.
        max_tokens: room for each reply.
    """

    version = AGENT_VERSION
    plan_tokens, advice_tokens = 150, 350
    """What the dry run assumes a search plan and a recommendation take."""
    items_tokens = 1800
    """What the dry run assumes the retrieved items add to the recommendation's prompt (8 items x ~700 characters)."""

    def __init__(self, model: ChatModel, per_query: int = 4, max_items: int = 6, item_chars: int = 450,
                 max_tokens: int = 384, problem_chars: int = 4000,
                 max_insights: int = MAX_INSIGHTS_SHOWN) -> None:
        self.model = model
        self.per_query = per_query
        self.max_items = max_items
        self.item_chars = item_chars
        self.max_tokens = max_tokens
        self.problem_chars = problem_chars
        self.max_insights = max_insights

    async def recommend(self, problem: Problem, recall: Recall, exclude_families: Collection[str],
                        drafted: Sequence[Hit] = ()) -> Recommendation:
        """`drafted`: the documents of the APIs the coder's own draft uses (SparkMemory.draft_documents), shown
        before the searches' hits (`max_items` in all); `recall.fetch` must find them."""
        text = problem.prompt[: self.problem_chars]
        plan = await ask_json(self.model, plan_messages(text), interpret_plan, PLAN_SCHEMA, self.max_tokens)
        trace: dict[str, Any] = {"plan_raw": plan.raw, "usage": plan.usage.to_json()}
        if plan.value is None:
            return Recommendation(text="", trace=trace, error=f"search plan unusable: {plan.error}")
        libraries = search_libraries(plan.value["library"], text, problem.library)
        queries, best = [], {}
        statement = prompt_query(problem.prompt)
        searched = [(q, "plan") for q in plan.value["queries"]] + ([(statement, "statement")] if statement else [])
        for query, source in searched:
            scope: list[str] | None = libraries
            hits = recall.search(query, scope, exclude_families, self.per_query)
            if not hits:  # those libraries hold nothing for it (or are not in the memory): search them all
                scope = None
                hits = recall.search(query, scope, exclude_families, self.per_query)
            queries.append({"query": query[:200], "source": source, "libraries": scope,
                            "hits": [_hit_json(h) for h in hits]})
            weight = STATEMENT_WEIGHT if source == "statement" else 1.0
            for hit in hits:  # an item found by several searches adds up their (weighted) scores
                score = weight * hit.score + (best[hit.id].score if hit.id in best else 0.0)
                best[hit.id] = replace(hit, score=score)
        trace["queries"] = queries
        if drafted:
            trace["draft_documents"] = [h.id for h in drafted]
        chosen = self._shown(best.values(), drafted)
        items = recall.fetch([h.id for h in chosen])
        listed = [h for h in chosen if h.id in items]
        advice = await ask_json(self.model, self._advice_messages(text, plan.value, listed, items),
                                recommendation_reader([h.id for h in listed]), recommend_schema(len(listed)),
                                self.max_tokens)
        trace["usage"] = (plan.usage + advice.usage).to_json()
        trace["recommendation_raw"] = advice.raw
        if advice.value is None:
            shown = tuple(RetrievedItem(h.id, h.kind, round(h.score, 6), cited=False) for h in listed)
            return Recommendation(text="", plan=plan.value, items=shown, trace=trace,
                                  error=f"recommendation unusable: {advice.error}")
        cited = set(advice.value["cited"])
        copied = copied_items(advice.value["text"], {h.id: self._shown_text(items[h.id]) for h in listed
                                                     if h.id not in cited})
        shown = tuple(RetrievedItem(h.id, h.kind, round(h.score, 6), cited=h.id in cited, copied=h.id in copied)
                      for h in listed)
        documents = [str(items[h.id].meta.get("qualname") or items[h.id].title) for h in listed
                     if h.kind == "doc" and (h.id in cited or h.id in copied)]
        named = advice.value["text"] + (CITED_LINE + ", ".join(f"`{d}`" for d in dict.fromkeys(documents)) + "."
                                        if documents else "")
        return Recommendation(text=named, plan=plan.value, items=shown, trace=trace)

    def _shown(self, hits: Collection[Hit], first: Sequence[Hit] = ()) -> list[Hit]:
        """`first` (the draft's documents, at most half of `max_items`, so the searches and the lessons keep their
        place), then the best-scored hits, at most `max_items` in all, of which at most `max_insights` are
        insights: the store's few insights otherwise outrank the documentation (each index's fused scores run
        alike, a small index's first hits as high as a large one's) and every item shown is a lesson."""
        chosen: list[Hit] = list(first[: self.max_items // 2])
        insights = 0
        taken = {h.id for h in chosen}
        for hit in sorted((h for h in hits if h.id not in taken), key=lambda h: (-h.score, h.id)):
            if len(chosen) == self.max_items:
                break
            if hit.kind == "insight":
                if insights >= self.max_insights:
                    continue
                insights += 1
            chosen.append(hit)
        return chosen

    def _shown_text(self, item: Item) -> str:
        return f"{item.title}\n{item.content[: self.item_chars]}"

    @classmethod
    def planned_calls(cls, model: Any, problem: Problem) -> list[Call]:
        """The two calls `recommend` makes for `problem` with the model configured as `model`: the plan, the advice."""
        plan = tokens(plan_messages(problem.prompt))
        return [Call("agent", model, plan, cls.plan_tokens), Call("agent", model, plan + cls.items_tokens,
                                                                   cls.advice_tokens)]

    def _advice_messages(self, text: str, plan: dict[str, Any], hits: list[Hit], items: dict[str, Item]) -> list[Message]:
        listed = "\n\n".join(f"[{n}] ({h.kind}) {self._shown_text(items[h.id])}"
                               for n, h in enumerate(hits, 1)) or "(nothing relevant was found)"
        prompt = RECOMMEND_PROMPT.format(problem=text, intent=plan["intent"] or "-", avoid=plan["avoid"] or "-",
                                         items=listed, max_cited=MAX_CITED)
        return [{"role": "system", "content": RECOMMEND_SYSTEM}, {"role": "user", "content": prompt}]


def copied_items(advice: str, shown: dict[str, str]) -> set[str]:
    """The ids of the `shown` items (id -> the text shown of it) the advice copies a run of COPY_WORDS words from."""
    grams = word_ngrams(advice, COPY_WORDS)
    return {i for i, text in shown.items() if grams & word_ngrams(text, COPY_WORDS)}


# DS-1000's prompt format around the statement: its header, the solution placeholder and the code fences.
_BOILERPLATE = re.compile(r"^Problem:\s*$|result = \.\.\. # put solution in this variable|BEGIN SOLUTION|"
                          r"# SOLUTION START|</?code>", re.M)


def prompt_query(prompt: str, cap: int = STATEMENT_CHARS) -> str:
    """What is searched for a problem's statement (raw RAG's query, and the agent's besides its plan): its statement,
    the text before DS-1000's `A:` code block, without the format's boilerplate and without lines that are mostly
    data (tables, literals: under half letters); a prompt without that block (Matplotlib's: code whose comments
    ask) whole, less its boilerplate; on one line, cut at `cap` characters. On bench/bench_recall.py over the full
    KB this lifts BM25's recall@10 from 0.139 (the prompt's first 2,000 characters) to 0.176, and MiniLM's hybrid
    (every chunk embedded, RRF 60/100/1) from 0.237 to 0.252 (measured before code-only prompts were kept whole)."""
    statement, code_block, _ = prompt.partition("\nA:\n")
    lines = [line.strip() for line in _BOILERPLATE.sub(" ", statement).splitlines()]
    kept = [line for line in lines if line and (not code_block or sum(c.isalpha() for c in line) >= len(line) / 2)]
    return " ".join(kept)[:cap]


def plan_messages(text: str) -> list[Message]:
    prompt = PLAN_PROMPT.format(problem=text, libraries=", ".join(LIBRARIES), max_queries=MAX_QUERIES)
    return [{"role": "system", "content": PLAN_SYSTEM}, {"role": "user", "content": prompt}]


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(hit).items()}

