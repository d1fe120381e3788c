"""Coders that replay answers instead of generating them: DS-1000's references, or an answers file."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from spark_eval.errors import UserError
from spark_eval.models.base import Pooled
from spark_eval.records import read_jsonl
from spark_eval.types import Problem
from spark_eval.records import Completion, Recommendation


class AnswersError(UserError, ValueError):
    """An answers file is unusable; the message names the line and the fix."""


class ReferenceAnswers(Pooled):
    """DS-1000's own reference solutions as the answers (the paper's human-quality condition)."""

    def __init__(self, name: str = "reference") -> None:
        self.name = name

    @staticmethod
    def planned_calls(*_: Any) -> list:
        """No model call: the answers are there."""
        return []

    async def answer(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> Completion:
        return Completion(text=problem.reference_code)


class AnswersFile(Pooled):
    """Answers made elsewhere, one JSON object per line.

    Either `{"id": <problem_id>, "code": <answer>}` on every line, or DS-1000's own answer files:
    `{"code": <answer or [answers]>}` with no id, one line per problem in problem order.

    Args:
        path: the JSONL file.
        name: the model name used in run directories and records.
    """

    def __init__(self, path: str, name: str = "answers") -> None:
        self.name = name
        self.path = Path(path)
        self.answers = read_answers(self.path)

    planned_calls = ReferenceAnswers.planned_calls

    async def answer(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> Completion:
        if problem.problem_id not in self.answers:
            raise KeyError(f"{self.path} has no answer for problem {problem.problem_id}")
        return Completion(text=self.answers[problem.problem_id])


def answers_sha256(path: str | Path) -> str:
    """The answers file's content hash: what the resume identity holds of it (its location may change)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        raise AnswersError(f"answers file not found: {path}; set model.path=<answers.jsonl>") from None


def read_answers(path: Path) -> dict[int, str | list]:
    """Problem id -> answer text (a list is kept: post-processing takes its first element)."""
    if not path.is_file():
        raise AnswersError(f"answers file not found: {path}; set model.path=<answers.jsonl>")
    answers: dict[int, str | list] = {}
    keyed = None
    for lineno, row in read_jsonl(path, AnswersError):
        if not isinstance(row, dict) or not isinstance(row.get("code"), (str, list)):
            raise AnswersError(f'{path}:{lineno}: each line needs "code" (a string or a list of strings)')
        if keyed is None:
            keyed = "id" in row
        if keyed != ("id" in row):
            raise AnswersError(f'{path}:{lineno}: mixes lines with and without "id"; use one format')
        problem_id = int(row["id"]) if keyed else len(answers)
        if problem_id in answers:
            raise AnswersError(f"{path}:{lineno}: a second answer for problem {problem_id}")
        answers[problem_id] = row["code"]
    return answers
