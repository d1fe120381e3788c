"""Experience sources: traces of the stream itself (`online`), the paper's synthetic hints (`paper_synthetic`), or
a store learned by another run, copied when the run starts and never written (`frozen`).

`paper_synthetic` reproduces the paper's protocol: a model answers the problem, is then shown DS-1000's
reference solution and writes the hints a user would have given. Those hints know the answer, so every
output of a run that uses them is marked `leaky: true`.
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from spark_eval.memory.learn import Candidate, candidate_from, insights_schema, interpret_insights
from spark_eval.models.base import ChatModel
from spark_eval.data.base import Benchmark
from spark_eval.models.structured import add_usage, ask_json, merge_usage
from spark_eval.types import Problem

EXPERIENCE_SOURCES = ("online", "paper_synthetic", "frozen", "none")

HINTS_PROMPT = """\
Here is the reference solution to the problem:

<reference>
{reference}
</reference>

Compare it with your attempt. Write the hints a user would give an agent to get from an attempt like yours
to a correct solution, as at most {max_new} insights. Reply with a JSON object:
{{"insights": [{{"library": "{library}", "api": ["<qualified API name>", ...], "title": "...",
"content": "<at most 50 words>", "applies_when": "..."}}]}}"""


def source_of(problem: Problem, record_key: str, epoch: int, round_: int) -> dict[str, Any]:
    """The provenance entry of a trace."""
    library, origin = problem.origin_family
    return {"problem_id": problem.problem_id, "family": f"{library}/{origin}", "record_key": record_key,
            "epoch": epoch, "round": round_}


async def synthetic_hints(model: ChatModel, benchmark: Benchmark, problems: Sequence[Problem], max_new: int = 3, max_tokens: int = 768,
                          concurrency: int = 4) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """The paper's synthetic experience for every problem: attempt, then hints written with the reference
    in view. Returns the candidates and one usage/error report per problem (an unusable reply adds nothing);
    a call that fails after its retries raises ModelCallError, so the memory is not silently left without it."""
    slots = asyncio.Semaphore(concurrency)

    async def one(problem: Problem) -> tuple[list[Candidate], dict[str, Any]]:
        source = source_of(problem, f"synthetic/{problem.problem_id}", epoch=-1, round_=-1)
        usage: dict[str, Any] = {}
        async with slots:
            messages = benchmark.coder_messages(problem, None)
            attempt = await model.complete(messages, model.default_params(max_tokens=max_tokens))
            add_usage(usage, attempt)
            follow_up = HINTS_PROMPT.format(reference=problem.reference_code, max_new=max_new, library=problem.library)
            messages = [*messages, {"role": "assistant", "content": attempt.text}, {"role": "user", "content": follow_up}]
            reply = await ask_json(model, messages, interpret_insights, insights_schema(max_new), max_tokens)
        merge_usage(usage, reply.usage)
        report = {"usage": usage, "error": reply.error, "sources": [source["record_key"]]}
        found = [candidate_from(e, [source], "paper_synthetic") for e in (reply.value or [])[:max_new]]
        return found, report

    results = await asyncio.gather(*(one(p) for p in problems))
    return [c for found, _ in results for c in found], [report for _, report in results]
