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
from spark_eval.types import Problem
from spark_eval.records import Recommendation

QUALITY_VERSION = "quality-5"

QUALITY_RUBRIC = """\
5 - Correct; idiomatic use of the library (vectorised, the right API); clear and concise.
4 - Correct; minor issues only: a less idiomatic call, a small inefficiency, slightly unclear code.
3 - Correct on the typical input but misses an edge case the problem implies, or its correctness is doubtful.
2 - Not correct: a different result, a missing step, a wrong API or argument; some relevant ideas.
1 - Not correct: would raise an error, empty, not code, or unrelated to the task."""

# The fixed instructions come first, in the system message, and the problem and candidate after them: a model
# that keeps the state of a prompt's start (llama.cpp here, providers' prompt caches) evaluates them once per run.
REVIEWER = "You are a careful reviewer of Python data-science code. You reply only with JSON."
CORRECTNESS = """\
does the candidate produce exactly the result the problem asks for{against}, on the
inputs the problem describes? It may be written differently and still be correct. The candidate is run exactly
as written, in place of the solution, with the problem's variables already set: prose that is not code, a call
to a function the problem does not define (such as load_data()), an import of a name that does not exist, or
overwriting the problem's inputs with example values make it not correct."""
"""What makes a candidate correct, as every code judge asks it (`against`: what the result is compared with)."""
QUALITY_SYSTEM = REVIEWER + """

You grade a candidate solution to a programming problem. The problem shows where the candidate's code goes.{shown}

Judge correctness first: """ + CORRECTNESS + """ Then judge idiomatic use of the
library, clarity and efficiency.
{rubric}

Reply with only this JSON object: {reply}"""

QUALITY_PROMPT = """\
Problem:
<problem>
{problem}
</problem>
{reference}
Candidate solution:
<candidate>
{code}
</candidate>

Grade the candidate. Reply with only this JSON object: {reply}"""

SAMPLED_REPLY = '{{"flaw": "<the main flaw in one sentence, or none>", "score": <integer 1-5>}}'
EXPECTED_REPLY = '{{"score": <integer 1-5>}}'

REFERENCE_BLOCK = """
A reference solution (correct; a correct candidate may be written differently):
<reference>
{reference}
</reference>
"""

# Every field is bounded: a small judge otherwise repeats itself until its token cap and gives no score
# (schema-constrained decoding closes the string at the bound; other providers take it as guidance).
FLAW_CHARS = 200
QUALITY_SCHEMA = {
    "type": "object",
    "properties": {"flaw": {"type": "string", "maxLength": FLAW_CHARS},
                   "score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["flaw", "score"],
}


def quality_messages(problem: Problem, code: str, show_reference: bool = False, expected: bool = False) -> list[Message]:
    """The quality judge's prompt: problem and candidate only (plus the reference when asked); the reply it asks
    for is the score alone when the score is read from the model's probabilities (`expected`)."""
    reference = REFERENCE_BLOCK.format(reference=problem.reference_code) if show_reference else ""
    reply = (EXPECTED_REPLY if expected else SAMPLED_REPLY).format()
    system = QUALITY_SYSTEM.format(
        shown=" A reference solution is shown too." if show_reference else "",
        against=" (the result of the reference)" if show_reference else "", rubric=QUALITY_RUBRIC, reply=reply)
    prompt = QUALITY_PROMPT.format(problem=problem.prompt, reference=reference, code=code, reply=reply)
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


class QualityJudge(LLMJudge):
    """Grades code 1-5.

    Args:
        model: the judge's ChatModel.
        show_reference: also show DS-1000's reference solution.
        max_tokens: room for a sampled reply (its fields are bounded well below it).
        scoring: see LLMJudge.
    """

    kind = "quality"
    version = QUALITY_VERSION
    schema = QUALITY_SCHEMA
    choice_prefix = '{"score": '
    choice_scores = {str(k): float(k) for k in range(1, 6)}
    output_tokens = 350

    @classmethod
    def planned_messages(cls, problem: Problem, recommendation: Recommendation | None) -> list[Message]:
        return quality_messages(problem, problem.reference_code)

    def __init__(self, model: ChatModel, show_reference: bool = False, max_tokens: int = 256,
                 scoring: str = "auto") -> None:
        super().__init__(model, max_tokens, scoring)
        self.show_reference = show_reference
        if show_reference:
            self.name += "+ref"

    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message]:
        return quality_messages(problem, code, self.show_reference, self.expected)  # never the recommendation

    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        return {"rationale": text_field(reply, "flaw"), "score": integer_in(reply.get("score"), 1, 5, "score")}
