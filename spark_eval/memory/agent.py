"""The retrieval agent: plan searches for a problem, run them over docs and insights, write cited advice."""
from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any, Callable, Collection, Protocol, Sequence

from spark_eval.types import LIBRARIES
from spark_eval.types import LIBRARY_MODULES
from spark_eval.memory.index import Hit
from spark_eval.memory.store.base import Item
from spark_eval.models.base import ChatModel, Message
from spark_eval.models.calls import Call, tokens
from spark_eval.models.structured import ParseError, ask_json, integer_in, text_field
from spark_eval.types import Problem
from spark_eval.records import Recommendation, RetrievedItem

# Bump when a prompt, a schema or how citations are read changes: the version goes into every record of a memory run.
AGENT_VERSION = "agent-7"

# Every field is bounded (schema-constrained decoding closes a string at its bound; other providers take the
# bounds as guidance), so a reply cannot run to its token cap: a small model otherwise repeats itself until it does.
INTENT_CHARS, QUERY_CHARS, AVOID_CHARS, ADVICE_CHARS = 160, 60, 160, 600
MAX_QUERIES, MAX_CITED = 4, 3

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
- "queries": 2 to {max_queries} short search queries, each naming a function, method or class of the library that the code needs;
- "avoid": one short sentence on a mistake to steer clear of."""

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
    queries = list(dict.fromkeys(q.strip() for q in queries if isinstance(q, str) and q.strip()))[:MAX_QUERIES]
    if not queries:
        raise ParseError('"queries" must hold at least one non-empty string')
    names = {name.lower(): name for name in LIBRARIES}
    library = str(reply.get("library") or "").strip().lower()
    return {"intent": str(reply.get("intent") or "").strip(), "library": names.get(library),
            "queries": queries, "avoid": str(reply.get("avoid") or "").strip()}


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
                 max_tokens: int = 384, problem_chars: int = 4000) -> None:
        self.model = model
        self.per_query = per_query
        self.max_items = max_items
        self.item_chars = item_chars
        self.max_tokens = max_tokens
        self.problem_chars = problem_chars

    async def recommend(self, problem: Problem, recall: Recall, exclude_families: Collection[str]) -> Recommendation:
        text = problem.prompt[: self.problem_chars]
        plan = await ask_json(self.model, plan_messages(text), interpret_plan, PLAN_SCHEMA, self.max_tokens)
        trace: dict[str, Any] = {"plan_raw": plan.raw, "usage": plan.usage.to_json()}
        if plan.value is None:
            return Recommendation(text="", trace=trace, error=f"search plan unusable: {plan.error}")
        libraries = search_libraries(plan.value["library"], text, problem.library)
        queries, best = [], {}
        for query in plan.value["queries"]:
            scope: list[str] | None = libraries
            hits = recall.search(query, scope, exclude_families, self.per_query)
            if not hits:  # those libraries hold nothing for it (or are not in the memory): search them all
                scope = None
                hits = recall.search(query, scope, exclude_families, self.per_query)
            queries.append({"query": query, "libraries": scope, "hits": [_hit_json(h) for h in hits]})
            for hit in hits:
                if hit.id not in best or hit.score > best[hit.id].score:
                    best[hit.id] = hit
        trace["queries"] = queries
        chosen = sorted(best.values(), key=lambda h: (-h.score, h.id))[: self.max_items]
        items = recall.fetch([h.id for h in chosen])
        listed = [h for h in chosen if h.id in items]
        advice = await ask_json(self.model, self._advice_messages(text, plan.value, listed, items),
                                recommendation_reader([h.id for h in listed]), recommend_schema(len(listed)),
                                self.max_tokens)
        trace["usage"] = (plan.usage + advice.usage).to_json()
        trace["recommendation_raw"] = advice.raw
        cited = set(advice.value["cited"]) if advice.value else set()
        shown = [RetrievedItem(h.id, h.kind, round(h.score, 6), cited=h.id in cited) for h in listed]
        if advice.value is None:
            return Recommendation(text="", plan=plan.value, items=tuple(shown), trace=trace,
                                  error=f"recommendation unusable: {advice.error}")
        return Recommendation(text=advice.value["text"], plan=plan.value, items=tuple(shown), trace=trace)

    @classmethod
    def planned_calls(cls, model: Any, problem: Problem) -> list[Call]:
        """The two calls `recommend` makes for `problem` with the model configured as `model`: the plan, the advice."""
        plan = tokens(plan_messages(problem.prompt))
        return [Call("agent", model, plan, cls.plan_tokens), Call("agent", model, plan + cls.items_tokens,
                                                                   cls.advice_tokens)]

    def _advice_messages(self, text: str, plan: dict[str, Any], hits: list[Hit], items: dict[str, Item]) -> list[Message]:
        listed = "\n\n".join(
            f"[{n}] ({h.kind}) {items[h.id].title}\n{items[h.id].content[: self.item_chars]}"
            for n, h in enumerate(hits, 1)
        ) or "(nothing relevant was found)"
        prompt = RECOMMEND_PROMPT.format(problem=text, intent=plan["intent"] or "-", avoid=plan["avoid"] or "-",
                                         items=listed, max_cited=MAX_CITED)
        return [{"role": "system", "content": RECOMMEND_SYSTEM}, {"role": "user", "content": prompt}]


def plan_messages(text: str) -> list[Message]:
    prompt = PLAN_PROMPT.format(problem=text, libraries=", ".join(LIBRARIES), max_queries=MAX_QUERIES)
    return [{"role": "system", "content": PLAN_SYSTEM}, {"role": "user", "content": prompt}]


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(hit).items()}

