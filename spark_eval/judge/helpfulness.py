"""Helpfulness judge: a memory's recommendation for a problem, on five bands and five criteria.

The paper (Tablan et al., 2025) judged with Claude 3.7 Sonnet and reports only the top two bands,
"EXTREMELY HELPFUL" (76.1%) and "GOOD" (98.2% at least GOOD). The three lower bands (FAIR, POOR,
HARMFUL), all band descriptions and the criterion wording here are ours. The judge sees the problem and
the recommendation, never the coder's model, its code or the condition.
"""
from __future__ import annotations

from typing import Any

from spark_eval.judge.llm import LLMJudge
from spark_eval.models.structured import ParseError, integer_in, text_field
from spark_eval.models.base import ChatModel, Message
from spark_eval.records import BAND_SCORES, BANDS, Recommendation
from spark_eval.types import Problem

HELPFULNESS_VERSION = "helpfulness-5"

# BANDS, top to bottom: the paper names the first two; the other three are this project's.
CRITERIA = ("completeness", "effectiveness", "generalization", "relevance", "explainability")

HELPFULNESS_RUBRIC = """\
Bands:
- EXTREMELY HELPFUL: points straight at the right approach and API for this problem, correct, and enough
  on its own for a competent programmer to write the solution.
- GOOD: correct and useful; points the right way but leaves real work or misses a detail.
- FAIR: partly relevant or partly correct; some value, some noise.
- POOR: generic, off-target (about another task) or mostly irrelevant; little value.
- HARMFUL: wrong or misleading (a wrong API, a wrong argument or a false claim); following it would likely
  produce a wrong solution.
Criteria (each 1-5, 5 best):
- completeness: covers what the problem needs.
- effectiveness: following it leads to a correct solution.
- generalization: the advice is reusable beyond this one problem.
- relevance: about this problem, not another task or generic filler.
- explainability: says why, clearly."""

# The fixed instructions come first, in the system message (see quality.py), the problem and advice after them.
HELPFULNESS_SYSTEM = """\
You judge advice given to programmers. You reply only with JSON.

A coding assistant was given a programming problem together with a recommendation from a shared memory. You
judge how helpful the recommendation is for solving that problem.

{rubric}

First check the recommendation: is it about this problem's task, and are the APIs and claims it makes right
for it? Then choose the band. Reply with only this JSON object:
{reply}"""

HELPFULNESS_PROMPT = """\
Problem:
<problem>
{problem}
</problem>

Recommendation:
<recommendation>
{recommendation}
</recommendation>

Is the recommendation about this problem's task, and are the APIs and claims it makes right for it? Judge it,
and reply with only this JSON object:
{reply}"""

SAMPLED_REPLY = """{{"check": "<what is right or wrong about it, one sentence>", "band": "<one of {bands}>",
"criteria": {{"completeness": <1-5>, "effectiveness": <1-5>, "generalization": <1-5>, "relevance": <1-5>,
"explainability": <1-5>}}}}"""
EXPECTED_REPLY = '{{"band": "<one of {bands}>"}}'

CHECK_CHARS = 200  # bounded, as every judge field
_SCORE = {"type": "integer", "minimum": 1, "maximum": 5}
HELPFULNESS_SCHEMA = {
    "type": "object",
    "properties": {
        "check": {"type": "string", "maxLength": CHECK_CHARS},
        "band": {"type": "string", "enum": list(BANDS)},
        "criteria": {"type": "object", "properties": {c: _SCORE for c in CRITERIA}, "required": list(CRITERIA)},
    },
    "required": ["check", "band", "criteria"],
}


def helpfulness_messages(problem: Problem, recommendation: Recommendation, expected: bool = False) -> list[Message]:
    """The helpfulness judge's prompt; the reply it asks for is the band alone when the band is read from the
    model's probabilities (`expected`)."""
    reply = (EXPECTED_REPLY if expected else SAMPLED_REPLY).format(bands=", ".join(BANDS))
    system = HELPFULNESS_SYSTEM.format(rubric=HELPFULNESS_RUBRIC, reply=reply)
    prompt = HELPFULNESS_PROMPT.format(problem=problem.prompt, recommendation=recommendation.text, reply=reply)
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


class HelpfulnessJudge(LLMJudge):
    """Grades a recommendation: a band (score 5 = EXTREMELY HELPFUL .. 1 = HARMFUL) and five criteria.

    Args:
        model: the judge's ChatModel.
        max_tokens: room for a sampled reply (its fields are bounded well below it).
        scoring: see LLMJudge.
    """

    kind = "helpfulness"
    version = HELPFULNESS_VERSION
    schema = HELPFULNESS_SCHEMA
    choice_prefix = '{"band": "'
    choice_scores = {band: float(score) for band, score in BAND_SCORES.items()}
    output_tokens = 450

    @classmethod
    def planned_messages(cls, problem: Problem, recommendation: Recommendation | None) -> list[Message] | None:
        return None if recommendation is None else helpfulness_messages(problem, recommendation)

    def __init__(self, model: ChatModel, max_tokens: int = 256, scoring: str = "auto") -> None:
        super().__init__(model, max_tokens, scoring)

    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message] | None:
        if recommendation is None or not recommendation.text:  # no advice was given: nothing to judge
            return None
        return helpfulness_messages(problem, recommendation, self.expected)

    def interpret_choices(self, probabilities: dict[str, float]) -> dict[str, Any]:
        """The expected band score, and the most likely band."""
        return {**super().interpret_choices(probabilities), "band": max(BANDS, key=lambda b: probabilities[b])}

    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        band = str(reply.get("band", "")).strip().upper()
        if band not in BAND_SCORES:
            raise ParseError(f'"band" must be one of {", ".join(BANDS)}, got {reply.get("band")!r}')
        given = reply.get("criteria")
        if not isinstance(given, dict):
            raise ParseError('"criteria" must be an object with ' + ", ".join(CRITERIA))
        criteria = {name: {"score": integer_in(given.get(name), 1, 5, f"criteria.{name}")} for name in CRITERIA}
        return {"band": band, "score": BAND_SCORES[band], "criteria": criteria,
                "rationale": text_field(reply, "check")}
