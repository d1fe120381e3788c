"""Where a Spark memory's experience comes from: one part per source, chosen by `memory.experience`.

- `online`: learn from the stream's own feedback after each round (`OnlineExperience`);
- `paper_synthetic`: the paper's protocol: a model answers the problem, is then shown the reference solution
  and writes the hints a user would have given. Those hints know the answer, so every output of a run that uses
  them is marked `leaky: true` (`SyntheticExperience`);
- `frozen`: a store learned by another run (perhaps on another benchmark), copied into the run when it starts and
  only read (`FrozenExperience`);
- `none`: no experience (`NoExperience`).

`EXPERIENCES` is the only place the name is read; the memory asks its part, never the name. A part is given the
memory's `LearningLoop` (`loop.py`: the store, the learner, the curator, a round of learning), never the memory.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Sequence

from spark_eval.data.base import Benchmark
from spark_eval.judge import helpfulness, quality
from spark_eval.memory import agent
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.learning import learner
from spark_eval.memory.learning.learner import Candidate, candidate_from, insights_schema, interpret_insights
from spark_eval.memory.learning.loop import LearningLoop, source_of
from spark_eval.memory.learning.screen import InsightScreen
from spark_eval.memory.store.base import shown_url
from spark_eval.memory.store.open import copy_store
from spark_eval.models.base import ChatModel
from spark_eval.models.calls import CHARS_PER_TOKEN, Call, tokens
from spark_eval.models.structured import ask_json
from spark_eval.records import Record, Usage
from spark_eval.types import Problem

log = logging.getLogger(__name__)


class NoExperience:
    """Nothing learned, nothing written."""

    leaky = False
    learns = False

    def versions(self) -> dict[str, str]:
        return {}

    def check(self, loop: LearningLoop) -> None:
        """Refuse a config this part cannot work with, when the memory is built (before any work)."""
        return None

    def before_open(self, loop: LearningLoop) -> None:
        return None

    async def prepare(self, loop: LearningLoop, problems: Sequence[Problem]) -> None:
        return None

    async def learn(self, loop: LearningLoop, records: Sequence[Record], epoch: int, round_: int) -> None:
        return None

    @classmethod
    def planned_calls(cls, settings: Any, benchmark: Benchmark, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        """The learner's calls for `rounds` (the records a run has to make, a problem each, by round), with the
        memory configured as `settings` (the dry run's)."""
        return []


class FrozenExperience(NoExperience):
    """A copy of `memory.frozen_store` (a file or a database) becomes the run's store when the run starts; the run reads
    it and never writes it, so every problem sees the same state. A resumed run keeps its copy."""

    def check(self, loop: LearningLoop) -> None:
        if not loop.frozen_store:
            raise MemoryConfigError("memory.experience=frozen needs memory.frozen_store=<a learned store.sqlite or "
                                    "postgresql://... URL>")
        if loop.store_path is None:
            raise MemoryConfigError("memory.experience=frozen copies its store into the run: leave memory.store unset "
                                    f"(it is {shown_url(loop.store_location)})")

    def before_open(self, loop: LearningLoop) -> None:
        if not loop.store_path.exists():
            state = copy_store(loop.frozen_store, loop.store_path)
            log.info("memory: a frozen copy of %s (state %s)", shown_url(loop.frozen_store), state[:12])


class SyntheticExperience(NoExperience):
    """The paper's synthetic hints for every problem of the stream, written once before it starts."""

    leaky = True
    attempt_tokens = 300
    """What the dry run assumes the learner model's attempt takes."""

    def versions(self) -> dict[str, str]:
        return {"hints": HINTS_VERSION}

    @classmethod
    def planned_calls(cls, settings: Any, benchmark: Benchmark, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        """An attempt and its hints for each problem (once, before the stream)."""
        calls = []
        for problem in dict.fromkeys(p for problems in rounds for p in problems):
            asked = tokens(benchmark.coder_messages(problem, None))
            shown = asked + cls.attempt_tokens + len(problem.reference_code) // CHARS_PER_TOKEN
            calls += [Call("learner", settings.learner_model, asked, cls.attempt_tokens),
                      Call("learner", settings.learner_model, shown, learner.Learner.insights_tokens)]
        return calls

    async def prepare(self, loop: LearningLoop, problems: Sequence[Problem]) -> None:
        if loop.store.get_meta("synthetic_done"):
            return
        c = loop.learning
        candidates, calls = await synthetic_hints(loop.learner_model(), loop.benchmark, problems, max_new=c["max_new"],
                                                  max_tokens=c["max_tokens"])
        where = {"epoch": -1, "round": -1}
        with loop.store.transaction():
            ops = loop.curator().apply(candidates, {}, {}, where, check_leaks=False)
            loop.store.set_meta("synthetic_done", {"problems": len(problems), "candidates": len(candidates)})
        loop.record_health(-1, -1, len(problems), ops, sum((c["usage"] for c in calls), Usage()),
                           candidates=len(candidates), unusable=sum(1 for c in calls if c["error"]))


class OnlineExperience(NoExperience):
    """Learn from each round's records once they are on disk: the learner distills traces into candidate
    insights, the curator adds, merges, counts outcomes and retires (`LearningLoop.round`)."""

    learns = True

    async def prepare(self, loop: LearningLoop, problems: Sequence[Problem]) -> None:
        if loop.learns and loop.learning["screen"]:
            loop.screen = InsightScreen(loop.documented, harness_texts(loop.benchmark.prompts),
                                        placeholders=learner.REPLY_PLACEHOLDERS)

    async def learn(self, loop: LearningLoop, records: Sequence[Record], epoch: int, round_: int) -> None:
        await loop.round(records, epoch, round_)

    @classmethod
    def planned_calls(cls, settings: Any, benchmark: Benchmark, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        """The learner's calls on each round's traces, a few traces a call."""
        return [c for problems in rounds if problems for c in
                learner.Learner.planned_calls(settings.learner_model, len(problems), settings.learning.traces_per_call)]


def harness_texts(benchmark_prompts: Sequence[str] = ()) -> list[str]:
    """Every prompt and rubric the harness shows a model (the benchmark's coder conversation given): what the
    screen keeps an insight from echoing."""
    return [agent.PLAN_SYSTEM, agent.PLAN_PROMPT, agent.RECOMMEND_SYSTEM, agent.RECOMMEND_PROMPT,
            learner.LEARN_SYSTEM, learner.LEARN_PROMPT, quality.QUALITY_SYSTEM, quality.QUALITY_PROMPT,
            quality.QUALITY_RUBRIC, quality.REFERENCE_BLOCK, helpfulness.HELPFULNESS_SYSTEM,
            helpfulness.HELPFULNESS_PROMPT, helpfulness.HELPFULNESS_RUBRIC, *benchmark_prompts]


EXPERIENCES = {"online": OnlineExperience, "paper_synthetic": SyntheticExperience, "frozen": FrozenExperience,
               "none": NoExperience}


def experience_class(name: str) -> type[NoExperience]:
    """The part `memory.experience=<name>` names."""
    if name not in EXPERIENCES:
        raise MemoryConfigError(f"memory.experience={name} is unknown; choose one of: {', '.join(EXPERIENCES)}")
    return EXPERIENCES[name]


def experience_part(name: str) -> NoExperience:
    return experience_class(name)()


HINTS_VERSION = "hints-1"
"""Bump when HINTS_PROMPT changes: it is in the versions of every record of a run that uses it."""
HINTS_PROMPT = """\
Here is the reference solution to the problem:

<reference>
{reference}
</reference>

Compare it with your attempt. Write the hints a user would give an agent to get from an attempt like yours
to a correct solution, as at most {max_new} insights. Reply with a JSON object:
{{"insights": [{{"library": "{library}", "api": ["<qualified API name>", ...], "title": "...",
"content": "<at most 50 words>", "applies_when": "..."}}]}}"""


async def synthetic_hints(model: ChatModel, benchmark: Benchmark, problems: Sequence[Problem], max_new: int = 3,
                          max_tokens: int = 768, concurrency: int = 4) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """The paper's synthetic experience for every problem: attempt, then hints written with the reference
    in view. Returns the candidates and one usage/error report per problem (an unusable reply adds nothing);
    a call that fails after its retries raises ModelCallError, so the memory is not silently left without it."""
    slots = asyncio.Semaphore(concurrency)

    async def one(problem: Problem) -> tuple[list[Candidate], dict[str, Any]]:
        source = source_of(problem, f"synthetic/{problem.problem_id}", epoch=-1, round_=-1, model=model.name)
        async with slots:
            messages = benchmark.coder_messages(problem, None)
            attempt = await model.complete(messages, model.default_params(max_tokens=max_tokens))
            follow_up = HINTS_PROMPT.format(reference=problem.reference_code, max_new=max_new, library=problem.library)
            messages = [*messages, {"role": "assistant", "content": attempt.text}, {"role": "user", "content": follow_up}]
            reply = await ask_json(model, messages, interpret_insights, insights_schema(max_new), max_tokens)
        report = {"usage": Usage.of(attempt) + reply.usage, "error": reply.error, "sources": [source["record_key"]]}
        found = [candidate_from(e, [source], "paper_synthetic") for e in (reply.value or [])[:max_new]]
        return found, report

    results = await asyncio.gather(*(one(p) for p in problems))
    return [c for found, _ in results for c in found], [report for _, report in results]
