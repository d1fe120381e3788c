"""Code-quality judge: one candidate solution graded 1-5 against a rubric that describes every level.

The paper (Tablan et al., 2025, arXiv:2511.08301) graded quality 1-5 with Gemini 2.5 Pro; the rubric
wording here is ours. The judge sees the problem and the code (and, if asked, the reference solution),
never the model's name, the condition or a memory's recommendation.
"""
from __future__ import annotations

from typing import Any

from spark_eval.judge.llm import LLMJudge
from spark_eval.models.structured import integer_in, text_field
from spark_eval.models.base import ChatModel, Message
from spark_eval.types import Problem, Recommendation

QUALITY_VERSION = "quality-2"

QUALITY_RUBRIC = """\
5 - Correct for the stated task, including edge cases the problem implies; idiomatic use of the library
    (vectorised, the right API); clear and concise; no needless work; robust to the inputs described.
4 - Correct for the stated task; minor issues only: a less idiomatic call, a small inefficiency, or
    slightly unclear code.
3 - Probably works on the typical input but is fragile or clearly unidiomatic (needless loops, wrong
    dtype handling, hard-coded values), or correctness is doubtful in a way that matters.
2 - Mostly wrong: solves a different task, misses a main requirement, or would fail on ordinary inputs;
    some relevant ideas.
1 - Wrong, empty, not code, or would not run."""

QUALITY_SYSTEM = "You are a strict, fair reviewer of Python data-science code. You reply only with JSON."

QUALITY_PROMPT = """\
Grade the candidate solution to the programming problem below.

Problem (the candidate's code goes where the solution goes):
<problem>
{problem}
</problem>
{reference}
Candidate solution:
<candidate>
{code}
</candidate>

Rubric (judge correctness for the stated task, idiomatic use of the library, clarity, efficiency, robustness):
{rubric}

Think about the candidate first, then grade it. Reply with only this JSON object:
{{"reasoning": "<two to four sentences>", "score": <integer 1-5>}}"""

REFERENCE_BLOCK = """
A reference solution (one correct answer; others may be just as good):
<reference>
{reference}
</reference>
"""

# The reasoning is bounded: a small local judge otherwise repeats itself until its token cap and gives no score
# (schema-constrained decoding closes the string at the bound; other providers take it as guidance).
REASONING_CHARS = 500
QUALITY_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string", "maxLength": REASONING_CHARS},
                   "score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["reasoning", "score"],
}


def quality_messages(problem: Problem, code: str, show_reference: bool = False) -> list[Message]:
    """The quality judge's prompt: problem and candidate only (plus the reference when asked)."""
    reference = REFERENCE_BLOCK.format(reference=problem.reference_code) if show_reference else ""
    prompt = QUALITY_PROMPT.format(problem=problem.prompt, reference=reference, code=code, rubric=QUALITY_RUBRIC)
    return [{"role": "system", "content": QUALITY_SYSTEM}, {"role": "user", "content": prompt}]


class QualityJudge(LLMJudge):
    """Grades code 1-5.

    Args:
        model: the judge's ChatModel.
        show_reference: also show DS-1000's reference solution.
        max_tokens: room for the reasoning and the JSON.
    """

    kind = "quality"
    version = QUALITY_VERSION
    schema = QUALITY_SCHEMA

    def __init__(self, model: ChatModel, show_reference: bool = False, max_tokens: int = 768) -> None:
        super().__init__(model, max_tokens)
        self.show_reference = show_reference
        if show_reference:
            self.name += "+ref"

    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message]:
        return quality_messages(problem, code, self.show_reference)  # the recommendation is never shown

    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        return {"rationale": text_field(reply, "reasoning"), "score": integer_in(reply.get("score"), 1, 5, "score")}
