"""Continuous learning's first half: the learner model distils a round's traces into candidate insights, a few
traces per call (`Learner`); what a candidate is, and the one text an insight is searched by."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

from spark_eval.memory.store.base import Item
from spark_eval.models.base import ChatModel, Message
from spark_eval.models.calls import Call
from spark_eval.models.structured import ParseError, Reply, ask_json
from spark_eval.types import LIBRARIES

log = logging.getLogger(__name__)

# Bump when a prompt, schema, screen (screen.py) or curation rule (curator.py) changes: it goes into every record
# of a memory run.
LEARNER_VERSION = "learner-4"

# Every field is bounded (as the agent's), so a reply cannot run to its token cap.
TITLE_CHARS, CONTENT_CHARS, WHEN_CHARS, API_CHARS, MAX_APIS = 80, 320, 120, 60, 3

LEARN_SYSTEM = (
    "You curate a shared memory of lessons for coding agents that solve data-science problems with NumPy, "
    "pandas, Matplotlib, SciPy, scikit-learn, PyTorch and TensorFlow. A lesson must help on other problems: "
    "which API does what, argument and dtype pitfalls, what an error means and how to fix it."
)
LEARN_PROMPT = """\
Below are attempts by coding agents, each with the advice it was given and how its code fared when
DS-1000's tests ran it.

{traces}

Write at most {max_new} lessons learned from these attempts (successes show what works, failures what to
avoid) that would help on other problems. Each lesson comes from one attempt and is about functions of that
attempt's library that its code calls or its documents show: what to call, with which arguments, or which mistake
to avoid and why. Its "library" is that attempt's library; its
"applies_when" names, in a few words, the kind of problem where the lesson helps (not its title again).
Never restate a problem, its data or its variable names, and never comment on the grading.
Reply with a JSON object: {{"insights": [{{"library": "<the library of the attempt it is learned from>",
"api": ["<qualified API name>", ...], "title": "...", "content": "<at most 50 words>",
"applies_when": "<the kind of task>"}}]}}"""
REPLY_PLACEHOLDERS = (*re.findall(r"<([^<>]+)>", LEARN_PROMPT), "...", "…")
"""The reply format's placeholders: a field that holds one was copied from the format (the screen rejects it)."""


def insights_schema(max_new: int) -> dict[str, Any]:
    """The learner's (and the synthetic hints') reply: at most `max_new` insights, every field bounded."""
    return {
        "type": "object",
        "properties": {
            "insights": {
                "type": "array",
                "maxItems": max_new,
                "items": {
                    "type": "object",
                    "properties": {
                        "library": {"type": "string", "enum": list(LIBRARIES)},
                        "api": {"type": "array", "items": {"type": "string", "maxLength": API_CHARS},
                                "minItems": 1, "maxItems": MAX_APIS},
                        "title": {"type": "string", "maxLength": TITLE_CHARS},
                        "content": {"type": "string", "maxLength": CONTENT_CHARS},
                        "applies_when": {"type": "string", "maxLength": WHEN_CHARS},
                    },
                    "required": ["library", "api", "title", "content", "applies_when"],
                },
            }
        },
        "required": ["insights"],
    }


@dataclass(frozen=True)
class Candidate:
    """A proposed insight with the traces it came from."""

    title: str
    content: str
    tags: tuple[str, ...]
    applies_when: str
    library: str | None
    sources: tuple[dict[str, Any], ...]
    """Provenance: `{problem_id, family, record_key, round, epoch}` of each trace behind it."""
    origin: str = "online"
    apis: tuple[str, ...] = ()
    """The API names the insight says it is about."""


def interpret_insights(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """Insights with a title and content; anything else in the list is dropped, a wrong shape is an error."""
    insights = reply.get("insights")
    if not isinstance(insights, list):
        raise ParseError('"insights" must be a list of objects')
    kept = []
    for entry in insights:
        if isinstance(entry, dict) and str(entry.get("title") or "").strip() and str(entry.get("content") or "").strip():
            kept.append(entry)
    return kept


def candidate_from(entry: dict[str, Any], sources: Sequence[dict[str, Any]], origin: str) -> Candidate:
    names = {name.lower(): name for name in LIBRARIES}
    tags = entry.get("tags") if isinstance(entry.get("tags"), list) else []
    apis = entry.get("api") if isinstance(entry.get("api"), list) else []
    apis = tuple(dict.fromkeys(str(a).strip() for a in apis if str(a).strip()))
    return Candidate(
        title=str(entry["title"]).strip(), content=str(entry["content"]).strip(),
        tags=tuple(dict.fromkeys([*apis, *(str(t).strip() for t in tags if str(t).strip())])),
        applies_when=str(entry.get("applies_when") or "").strip(),
        library=names.get(str(entry.get("library") or "").strip().lower()),
        sources=tuple(sources), origin=origin, apis=apis,
    )


def insight_id(title: str, content: str) -> str:
    return "ins:" + hashlib.sha256(f"{title}\n{content}".encode()).hexdigest()[:16]


def insight_text(item: Item) -> str:
    """What is embedded and searched for an insight."""
    return searched_text(item.title, item.content, item.meta.get("applies_when"))


def searched_text(title: str, content: str, applies_when: str | None) -> str:
    """The one text form of an insight and of a candidate, so a candidate's vector meets the stored ones'."""
    return f"{title}\n{content}" + (f"\nApplies when: {applies_when}" if applies_when else "")


class Learner:
    """Asks the learner model for insights from traces (a few traces per call).

    Args:
        model: the learner's ChatModel (configured apart from the coder's).
        traces_per_call: traces shown in one call.
        max_new: insights asked for per call.
        max_tokens: room for the reply.
    """

    version = LEARNER_VERSION
    trace_tokens = 700
    """What the dry run assumes one trace takes in a prompt (problem excerpt, advice, code, feedback)."""
    insights_tokens = 400
    """What the dry run assumes a reply of insights takes for a call of `traces_per_call` traces (in proportion for
    fewer)."""

    def __init__(self, model: ChatModel, traces_per_call: int = 4, max_new: int = 2, max_tokens: int = 512) -> None:
        self.model = model
        self.traces_per_call = traces_per_call
        self.max_new = max_new
        self.max_tokens = max_tokens

    async def distill(self, traces: Sequence[dict[str, Any]]) -> tuple[list[Candidate], list[dict[str, Any]]]:
        """Candidates from the traces, and one usage/error report per call (an unusable reply adds nothing).
        A call that fails after its retries raises ModelCallError: the caller learns nothing from these traces."""
        candidates, calls = [], []
        for start in range(0, len(traces), self.traces_per_call):
            batch = traces[start : start + self.traces_per_call]
            reply: Reply = await ask_json(self.model, self.messages(batch), interpret_insights,
                                          insights_schema(self.max_new), self.max_tokens)
            sources = [t["source"] for t in batch]
            calls.append({"usage": reply.usage, "error": reply.error, "raw": reply.raw if reply.error else None,
                          "sources": [s["record_key"] for s in sources]})
            if reply.value is None:
                log.warning("learner reply unusable (%s): nothing learned from %d traces", reply.error, len(batch))
                continue
            candidates += [candidate_from(e, sources, "online") for e in reply.value[: self.max_new]]
        return candidates, calls

    @classmethod
    def planned_calls(cls, model: Any, traces: int, traces_per_call: int) -> list[Call]:
        """The calls `distill` makes for `traces` traces with the model configured as `model`."""
        sizes = [min(traces_per_call, traces - start) for start in range(0, traces, traces_per_call)]
        return [Call("learner", model, n * cls.trace_tokens, n * cls.insights_tokens // traces_per_call) for n in sizes]

    def messages(self, batch: Sequence[dict[str, Any]]) -> list[Message]:
        shown = "\n\n".join(format_trace(i + 1, t) for i, t in enumerate(batch))
        prompt = LEARN_PROMPT.format(traces=shown, max_new=self.max_new, libraries=", ".join(LIBRARIES))
        return [{"role": "system", "content": LEARN_SYSTEM}, {"role": "user", "content": prompt}]


def format_trace(number: int, trace: dict[str, Any]) -> str:
    """One attempt as the learner sees it: problem excerpt, advice, code, execution and judge feedback."""
    outcome = trace["status"] + (f" ({trace['error_type']})" if trace.get("error_type") else "")
    parts = [f"### Attempt {number}: {trace['library']}, result: {outcome}",
             f"Problem (excerpt):\n{trace['problem'][:900]}"]
    if trace.get("advice"):
        parts.append(f"Advice given:\n{trace['advice'][:500]}")
    if trace.get("documents"):
        parts.append(f"Documentation shown: {', '.join(trace['documents'][:6])}")
    parts.append(f"Code:\n{(trace.get('code') or '')[:700]}")
    if trace.get("stderr_tail") and trace["status"] != "passed":
        parts.append(f"Execution output (tail):\n{trace['stderr_tail'][-400:]}")
    for verdict in trace.get("verdicts") or []:
        parts.append(f"Reviewer: {verdict}")
    return "\n".join(parts)
