"""Code-quality judge: one candidate solution graded 1-5 against a rubric that describes every level.

The paper (Tablan et al., 2025, arXiv:2511.08301) graded quality 1-5 with Gemini 2.5 Pro; the rubric
wording here is ours. The judge sees the problem and the code (and, if asked, the reference solution),
never the model's name, the condition or a memory's recommendation.
"""
from __future__ import annotations

from typing import Any

from spark_eval.judge.llm import LLMJudge
from spark_eval.models.structured import ParseError, integer_in, text_field
from spark_eval.models.base import ChatModel, Message
from spark_eval.types import Problem, Recommendation

QUALITY_VERSION = "quality-3"

QUALITY_RUBRIC = """\
5 - Correct, and idiomatic use of the library (vectorised, the right API); clear and concise.
4 - Correct; minor issues only: a less idiomatic call, a small inefficiency, slightly unclear code.
3 - Correct on the typical input but fragile (hard-coded values, wrong dtype handling) or clearly unidiomatic.
2 - Not correct: a wrong result, a missing requirement or a wrong API or argument; some relevant ideas.
1 - Not correct: would not run, empty, not code, or unrelated to the task."""

QUALITY_SYSTEM = "You are a strict reviewer of Python data-science code. You reply only with JSON."

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

First decide whether the candidate is correct: does it produce exactly what the problem asks{against}, on the
inputs the problem describes? A wrong result, a missing step, a wrong API or argument, a name that is not
defined, code that would raise an error, or no code at all make it not correct; style and variable names do
not matter. Then grade it; a candidate that is not correct gets 2 or 1:
{rubric}

Reply with only this JSON object:
{{"flaw": "<the main flaw in one sentence, or none>", "correct": <true or false>, "score": <integer 1-5>}}"""

REFERENCE_BLOCK = """
A reference solution (correct; other correct answers may differ in style):
<reference>
{reference}
</reference>
"""

# Every field is bounded: a small local judge otherwise repeats itself until its token cap and gives no score
# (schema-constrained decoding closes the string at the bound; other providers take it as guidance).
FLAW_CHARS = 200
QUALITY_SCHEMA = {
    "type": "object",
    "properties": {"flaw": {"type": "string", "maxLength": FLAW_CHARS}, "correct": {"type": "boolean"},
                   "score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["flaw", "correct", "score"],
}


def quality_messages(problem: Problem, code: str, show_reference: bool = False) -> list[Message]:
    """The quality judge's prompt: problem and candidate only (plus the reference when asked)."""
    reference = REFERENCE_BLOCK.format(reference=problem.reference_code) if show_reference else ""
    against = " (the same result as the reference)" if show_reference else ""
    prompt = QUALITY_PROMPT.format(problem=problem.prompt, reference=reference, code=code, rubric=QUALITY_RUBRIC,
                                   against=against)
    return [{"role": "system", "content": QUALITY_SYSTEM}, {"role": "user", "content": prompt}]


class QualityJudge(LLMJudge):
    """Grades code 1-5.

    Args:
        model: the judge's ChatModel.
        show_reference: also show DS-1000's reference solution.
        max_tokens: room for the reply (its fields are bounded well below it).
    """

    kind = "quality"
    version = QUALITY_VERSION
    schema = QUALITY_SCHEMA

    def __init__(self, model: ChatModel, show_reference: bool = False, max_tokens: int = 256) -> None:
        super().__init__(model, max_tokens)
        self.show_reference = show_reference
        if show_reference:
            self.name += "+ref"

    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message]:
        return quality_messages(problem, code, self.show_reference)  # the recommendation is never shown

    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        correct = reply.get("correct")
        if not isinstance(correct, bool):
            raise ParseError(f'"correct" must be true or false, got {correct!r}')
        return {"rationale": text_field(reply, "flaw"), "criteria": {"correct": correct},
                "score": integer_in(reply.get("score"), 1, 5, "score")}
