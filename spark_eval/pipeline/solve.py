"""The work of one problem: recommend, answer, execute, judge. Returns a Record and writes no files."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Sequence

from spark_eval.data import Benchmark
from spark_eval.execution import Sandbox
from spark_eval.judge import Judge
from spark_eval.memory import Memory
from spark_eval.models import Coder
from spark_eval.models.base import ModelUnavailable
from spark_eval.models.ledger import BudgetExhausted
from spark_eval.types import Problem
from spark_eval.records import Completion, Judgment, Recommendation, Record, record_key

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Condition:
    """What a run holds fixed: which benchmark, who answers, with which memory, graded how."""

    benchmark: Benchmark
    coder: Coder
    memory: Memory
    sandbox: Sandbox
    judges: Sequence[Judge]
    judge_repeats: int
    seed: int
    versions: dict[str, str]


async def solve(problem: Problem, condition: Condition, epoch: int, repeat: int) -> Record:
    """One record for `problem`; a failure of any stage becomes the record's `error`, never a crash (but for a budget's
    refusal and a model no call of which can succeed, which stop the run)."""
    memory_hash = condition.memory.state_hash()
    recommendation = completion = code = exec_result = None
    judgments: list[Judgment] = []
    error = None
    try:
        recommendation, completion = await advise_and_answer(problem, condition, repeat)
        code, program = condition.benchmark.program(problem, completion.text)
        requires = condition.benchmark.requires(problem)
        exec_result = await asyncio.to_thread(condition.sandbox.run, program, requires)
        judgments = await judge_all(condition.judges, condition.judge_repeats, problem, code, recommendation)
    except (BudgetExhausted, ModelUnavailable):
        # not a failure of the problem: the run stops (before the cap; or because every call of a model would fail,
        # in one line, rather than an error record per problem), and a resume makes it
        raise
    except Exception as e:  # one problem's failure must not stop the run; it is kept in its record
        log.warning("problem %d: %s: %s", problem.problem_id, type(e).__name__, e)
        error = f"{type(e).__name__}: {e}"
    return Record(
        key=record_key(problem.problem_id, epoch, repeat),
        problem_id=problem.problem_id,
        library=problem.library,
        perturbation_type=problem.perturbation_type,
        origin_family=problem.origin_family,
        model=condition.coder.name,
        memory=condition.memory.name,
        seed=condition.seed,
        epoch=epoch,
        repeat=repeat,
        completion=completion,
        code=code,
        exec=exec_result,
        recommendation=recommendation,
        judgments=tuple(judgments),
        memory_hash=memory_hash,
        versions=condition.versions,
        error=error,
        leaky=condition.memory.leaky,
    )


async def advise_and_answer(problem: Problem, condition: Condition,
                            repeat: int) -> tuple[Recommendation | None, Completion]:
    """The memory's recommendation and the coder's answer with it. A memory with a gate (memory/gate.py), or one that
    reads the coder's draft (`reads_draft`), first has the coder draft its answer without memory (at temperature 0
    the no-memory answer itself). When the gate stays silent, that draft is the answer and the recommendation an
    abstention; otherwise the memory is handed the draft's code and advises."""
    memory = condition.memory
    gate = getattr(memory, "gate", None)
    if gate is None and not getattr(memory, "reads_draft", False):
        recommendation = await memory.recommend(problem)
        return recommendation, await condition.coder.answer(problem, recommendation, repeat)
    draft = await condition.coder.answer(problem, None, repeat)
    decision = None
    if gate is not None:
        decision = {**await gate.decide(condition.coder, problem, draft.text),
                    "draft_output_tokens": draft.output_tokens}
        if not decision["speaks"]:
            return Recommendation(text="", abstained=True, trace={"gate": decision}), draft
    recommendation = await memory.recommend(problem, draft=condition.benchmark.program(problem, draft.text)[0])
    if recommendation is not None and decision is not None:
        recommendation = replace(recommendation, trace={**recommendation.trace, "gate": decision})
    return recommendation, await condition.coder.answer(problem, recommendation, repeat)


async def judge_all(
    judges: Sequence[Judge], repeats: int, problem: Problem, code: str, recommendation: Recommendation | None
) -> list[Judgment]:
    """Every judge's verdicts, `repeats` times each (a judge with nothing to judge gives none)."""
    verdicts = []
    for judge in judges:
        for repeat in range(repeats):
            verdict = await judge.grade(problem, code, recommendation, repeat)
            if verdict is not None:
                verdicts.append(verdict)
    return verdicts
