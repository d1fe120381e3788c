"""The retrieval agent: plan searches for a problem, run them over docs and insights, write cited advice."""
from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any, Collection, Protocol, Sequence

from spark_eval.data.ds1000 import LIBRARIES
from spark_eval.execution.base import LIBRARY_MODULES
from spark_eval.memory.index import Hit
from spark_eval.memory.store import Item
from spark_eval.models.base import ChatModel, Message
from spark_eval.models.structured import ParseError, ask_json, merge_usage, text_field
from spark_eval.types import Problem, Recommendation

# Bump when a prompt, a schema or how citations are read changes: the version goes into every record of a memory run.
AGENT_VERSION = "agent-5"
# The names the libraries' users import them under, for citations written as code (`np.nanmean`).
IMPORT_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "mpl": "matplotlib", "tf": "tensorflow",
                  "sns": "seaborn"}

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
- "intent": what the code must do, in one sentence;
- "library": the main library, one of {libraries};
- "queries": 2 to 5 short search queries (API names, concepts, error messages) for the memory;
- "avoid": mistakes or wrong APIs to steer clear of, in one sentence."""

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

Retrieved items (id, kind, title, content):
{items}

Write a recommendation of at most 150 words for the coding agent that will solve this problem: the
approach, the exact API names and arguments to use, and the pitfalls. Cite the ids of the items you relied
on, exactly as written between the brackets, each once. Reply with a JSON object:
{{"recommendation": "...", "cited": ["<item id>", ...]}}"""

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string"},
        "library": {"type": "string", "enum": list(LIBRARIES)},
        "queries": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 5},
        "avoid": {"type": "string"},
    },
    "required": ["intent", "library", "queries", "avoid"],
}
RECOMMEND_SCHEMA = {
    "type": "object",
    "properties": {
        "recommendation": {"type": "string"},
        "cited": {"type": "array", "items": {"type": "string"}, "maxItems": 12},
    },
    "required": ["recommendation", "cited"],
}


class Recall(Protocol):
    """What the agent searches: hybrid search, then the items behind the hits."""

    def search(self, query: str, libraries: Collection[str] | None, exclude_families: Collection[str],
               k: int) -> list[Hit]: ...

    def fetch(self, ids: Sequence[str]) -> dict[str, Item]: ...


def interpret_plan(reply: dict[str, Any]) -> dict[str, Any]:
    """The plan with 1-5 distinct non-empty queries and the library mapped onto DS-1000's names (None if unknown)."""
    queries = reply.get("queries")
    if not isinstance(queries, list):
        raise ParseError('"queries" must be a list of strings')
    queries = list(dict.fromkeys(q.strip() for q in queries if isinstance(q, str) and q.strip()))[:5]
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


def interpret_recommendation(reply: dict[str, Any]) -> dict[str, Any]:
    cited = reply.get("cited") or []
    if not isinstance(cited, list):
        raise ParseError('"cited" must be a list of item ids')
    return {"text": text_field(reply, "recommendation"), "cited": [c for c in cited if isinstance(c, str)]}


class RetrievalAgent:
    """Plan -> hybrid search per query -> recommendation citing item ids; the whole trace is kept.

    Args:
        model: the agent's ChatModel (configured apart from the coder's).
        per_query: hits kept per query.
        max_items: items shown to the model for the recommendation.
        item_chars: characters of each item's content shown.
        max_tokens: room for each reply.
    """

    version = AGENT_VERSION

    def __init__(self, model: ChatModel, per_query: int = 4, max_items: int = 8, item_chars: int = 700,
                 max_tokens: int = 512, problem_chars: int = 6000) -> None:
        self.model = model
        self.per_query = per_query
        self.max_items = max_items
        self.item_chars = item_chars
        self.max_tokens = max_tokens
        self.problem_chars = problem_chars

    async def recommend(self, problem: Problem, recall: Recall, exclude_families: Collection[str]) -> Recommendation:
        text = problem.prompt[: self.problem_chars]
        plan = await ask_json(self.model, plan_messages(text), interpret_plan, PLAN_SCHEMA, self.max_tokens)
        trace: dict[str, Any] = {"plan_raw": plan.raw, "usage": dict(plan.usage)}
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
        advice = await ask_json(self.model, self._advice_messages(text, plan.value, chosen, items),
                                interpret_recommendation, RECOMMEND_SCHEMA, self.max_tokens)
        merge_usage(trace["usage"], advice.usage)
        trace["recommendation_raw"] = advice.raw
        cited = resolve_citations(advice.value["cited"], [h.id for h in chosen]) if advice.value else set()
        shown = [{"id": h.id, "kind": h.kind, "score": round(h.score, 6), "cited": h.id in cited} for h in chosen]
        if advice.value is None:
            return Recommendation(text="", plan=plan.value, items=tuple(shown), trace=trace,
                                  error=f"recommendation unusable: {advice.error}")
        return Recommendation(text=advice.value["text"], plan=plan.value, items=tuple(shown), trace=trace)

    def _advice_messages(self, text: str, plan: dict[str, Any], hits: list[Hit], items: dict[str, Item]) -> list[Message]:
        listed = "\n\n".join(
            f"[{h.id}] ({h.kind}) {items[h.id].title}\n{items[h.id].content[: self.item_chars]}"
            for h in hits if h.id in items
        ) or "(nothing relevant was found)"
        prompt = RECOMMEND_PROMPT.format(problem=text, intent=plan["intent"] or "-", avoid=plan["avoid"] or "-",
                                         items=listed)
        return [{"role": "system", "content": RECOMMEND_SYSTEM}, {"role": "user", "content": prompt}]


def resolve_citations(cited: Sequence[str], shown: Sequence[str]) -> set[str]:
    """The shown ids the model cited: an exact id, or the id without its `doc:<module>:` prefix (small models
    often cite `numpy.sum` for `doc:numpy:numpy.sum`), also under the library's usual import alias
    (`np.sum`); anything else is not a citation."""
    by_name = {}
    for ident in shown:
        by_name.setdefault(ident, ident)
        by_name.setdefault(ident.rsplit(":", 1)[-1], ident)
        by_name.setdefault(ident.rsplit(":", 1)[-1].split("#", 1)[0], ident)
    names = [_unaliased(c.strip().strip("[]")) for c in cited]
    return {by_name[name] for name in names if name in by_name}


def _unaliased(name: str) -> str:
    head, dot, rest = name.partition(".")
    return IMPORT_ALIASES[head] + dot + rest if dot and head in IMPORT_ALIASES else name


def plan_messages(text: str) -> list[Message]:
    prompt = PLAN_PROMPT.format(problem=text, libraries=", ".join(LIBRARIES))
    return [{"role": "system", "content": PLAN_SYSTEM}, {"role": "user", "content": prompt}]


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(hit).items()}

