"""Pairwise code judge: two answers to one problem side by side, which is better or a tie, asked in both orders.

A paired comparison asks whether one condition's answer to a problem beats another's, so a judge can be asked
exactly that, instead of grading each answer alone and subtracting. Small judges prefer a position (the first
answer shown, or the second), so every pair is asked twice with the answers swapped; the verdict is the mean of
the two orders' preferences and both orders are kept, with whether they agree.

The candidates are labelled A and B and nothing else: the judge never sees which model, condition or memory
wrote them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spark_eval.judge.llm import LLMJudge
from spark_eval.judge.quality import CORRECTNESS, REFERENCE_BLOCK, REVIEWER
from spark_eval.models.base import ChatModel, Message
from spark_eval.models.structured import ParseError, text_field
from spark_eval.records import Judgment, Recommendation
from spark_eval.types import Problem

PAIRWISE_VERSION = "pairwise-1"

PAIRWISE_SYSTEM = REVIEWER + """

You compare two candidate solutions, A and B, to one programming problem. The problem shows where a candidate's
code goes.{shown}

Judge correctness first: for each candidate, """ + CORRECTNESS + """ A correct candidate is better than one that is
not. When both are correct, or neither is, the better one is closer to correct, then the more idiomatic use of
the library, then the clearer. Answer tie only when nothing tells them apart.

Reply with only this JSON object: {reply}"""

PAIRWISE_PROMPT = """\
Problem:
<problem>
{problem}
</problem>
{reference}
Candidate A:
<candidate_a>
{first}
</candidate_a>

Candidate B:
<candidate_b>
{second}
</candidate_b>

Which candidate is better? Reply with only this JSON object: {reply}"""

SAMPLED_REPLY = '{{"reason": "<why, in one sentence>", "better": "A" | "B" | "tie"}}'
EXPECTED_REPLY = '{{"better": "A" | "B" | "tie"}}'
OPTIONS = {"A": 1.0, "B": 0.0, "tie": 0.5}
"""A reply's choice -> the preference for the candidate shown first (A)."""
REASON_CHARS = 200
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": REASON_CHARS},
                   "better": {"type": "string", "enum": list(OPTIONS)}},
    "required": ["reason", "better"],
}


def pairwise_messages(problem: Problem, first: str, second: str, show_reference: bool = False,
                      expected: bool = False) -> list[Message]:
    """The prompt comparing `first` (shown as A) with `second` (B) on `problem`."""
    reference = REFERENCE_BLOCK.format(reference=problem.reference_code) if show_reference else ""
    reply = (EXPECTED_REPLY if expected else SAMPLED_REPLY).format()
    system = PAIRWISE_SYSTEM.format(shown=" A reference solution is shown too." if show_reference else "",
                                    against=" (the result of the reference)" if show_reference else "", reply=reply)
    prompt = PAIRWISE_PROMPT.format(problem=problem.prompt, reference=reference, first=first, second=second,
                                    reply=reply)
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


@dataclass(frozen=True)
class PairVerdict:
    """Both orders' verdicts on answers `a` and `b` of one problem. `forward` was asked with a shown first,
    `backward` with b first; each one's score is its preference for the answer it showed first (1: A better,
    0: B better, 0.5: a tie; with expected scoring, the probability-weighted mean of those)."""

    forward: Judgment
    backward: Judgment

    @property
    def preference(self) -> float | None:
        """How strongly the judge prefers a over b, 0 to 1 (0.5: no preference), both orders averaged; None when
        either order gave no verdict."""
        if self.forward.score is None or self.backward.score is None:
            return None
        return (self.forward.score + 1.0 - self.backward.score) / 2

    @property
    def agree(self) -> bool | None:
        """Whether both orders pick the same answer (or both a tie): False when the pick follows the position."""
        if self.forward.score is None or self.backward.score is None:
            return None
        return _pick(self.forward.score) == _pick(1.0 - self.backward.score)

    def to_json(self) -> dict[str, Any]:
        return {"forward": self.forward.to_json(), "backward": self.backward.to_json(),
                "preference": self.preference, "agree": self.agree}


def _pick(preference_for_a: float) -> str:
    return "a" if preference_for_a > 0.5 else "b" if preference_for_a < 0.5 else "tie"


class PairwiseJudge(LLMJudge):
    """Compares two answers to one problem (`compare`); it grades no answer alone.

    Args:
        model: the judge's ChatModel.
        show_reference: also show DS-1000's reference solution.
        max_tokens: room for a sampled reply.
        scoring: see LLMJudge (expected: the preference is read off the options' probabilities).
    """

    kind = "pairwise"
    version = PAIRWISE_VERSION
    schema = PAIRWISE_SCHEMA
    choice_prefix = '{"better": "'
    choice_scores = OPTIONS
    output_tokens = 60

    def __init__(self, model: ChatModel, show_reference: bool = False, max_tokens: int = 256,
                 scoring: str = "auto") -> None:
        super().__init__(model, max_tokens, scoring)
        self.show_reference = show_reference
        if show_reference:
            self.name += "+ref"

    @classmethod
    def planned_messages(cls, problem: Problem, recommendation: Recommendation | None) -> list[Message] | None:
        return None  # `compare` is its call: the dry run of a single-answer panel counts nothing for it

    def messages(self, problem: Problem, code: str, recommendation: Recommendation | None) -> list[Message] | None:
        return None  # nothing to judge alone

    def interpret(self, reply: dict[str, Any]) -> dict[str, Any]:
        better = reply.get("better")
        if better not in OPTIONS:
            raise ParseError(f'"better" must be one of {", ".join(OPTIONS)}')
        return {"rationale": text_field(reply, "reason"), "score": OPTIONS[better]}

    async def compare(self, problem: Problem, a: str, b: str, repeat: int = 0) -> PairVerdict:
        """Both orders' verdicts on answers `a` and `b` of `problem` (ModelCallError when a call keeps failing)."""
        forward = await self.verdict(pairwise_messages(problem, a, b, self.show_reference, self.expected), repeat)
        backward = await self.verdict(pairwise_messages(problem, b, a, self.show_reference, self.expected), repeat)
        return PairVerdict(forward, backward)
