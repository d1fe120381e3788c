"""Where a Spark memory's experience comes from: one part per source, chosen by `memory.experience`.

- `online`: learn from the stream's own feedback after each round (`OnlineExperience`);
- `paper_synthetic`: the paper's protocol: a model answers the problem, is then shown the reference solution
  and writes the hints a user would have given. Those hints know the answer, so every output of a run that uses
  them is marked `leaky: true` (`SyntheticExperience`);
- `frozen`: a store learned by another run (perhaps on another benchmark), copied into the run when it starts and
  only read (`FrozenExperience`);
- `none`: no experience (`NoExperience`).

`EXPERIENCES` is the only place the name is read; the memory asks its part, never the name.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from spark_eval.data.base import Benchmark
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.learn import Candidate, candidate_from, insights_schema, interpret_insights
from spark_eval.memory.poison import poison_some
from spark_eval.memory.store import copy_store, shown_url
from spark_eval.models.base import ChatModel, ModelCallError
from spark_eval.models.ledger import BudgetExhausted
from spark_eval.models.structured import add_usage, ask_json, merge_usage
from spark_eval.records import GRADED, Record
from spark_eval.types import Problem

if TYPE_CHECKING:
    from spark_eval.memory.spark import SparkMemory

log = logging.getLogger(__name__)


class NoExperience:
    """Nothing learned, nothing written."""

    leaky = False
    learns = False

    def versions(self) -> dict[str, str]:
        return {}

    def check(self, memory: SparkMemory) -> None:
        """Refuse a config this part cannot work with, when the memory is built (before any work)."""
        return None

    def before_open(self, memory: SparkMemory) -> None:
        return None

    async def prepare(self, memory: SparkMemory, problems: Sequence[Problem]) -> None:
        return None

    async def learn(self, memory: SparkMemory, records: Sequence[Record], epoch: int, round_: int) -> None:
        return None


class FrozenExperience(NoExperience):
    """A copy of `memory.frozen_store` (a file or a database) becomes the run's store when the run starts; the run reads
    it and never writes it, so every problem sees the same state. A resumed run keeps its copy."""

    def check(self, memory: SparkMemory) -> None:
        if not memory.frozen_store:
            raise MemoryConfigError("memory.experience=frozen needs memory.frozen_store=<a learned store.sqlite or "
                                    "postgresql://... URL>")
        if memory.store_path is None:
            raise MemoryConfigError("memory.experience=frozen copies its store into the run: leave memory.store unset "
                                    f"(it is {shown_url(memory.store_location)})")

    def before_open(self, memory: SparkMemory) -> None:
        if not memory.store_path.exists():
            state = copy_store(memory.frozen_store, memory.store_path)
            log.info("memory: a frozen copy of %s (state %s)", shown_url(memory.frozen_store), state[:12])


class SyntheticExperience(NoExperience):
    """The paper's synthetic hints for every problem of the stream, written once before it starts."""

    leaky = True

    def versions(self) -> dict[str, str]:
        return {"hints": HINTS_VERSION}

    async def prepare(self, memory: SparkMemory, problems: Sequence[Problem]) -> None:
        if memory.store.get_meta("synthetic_done"):
            return
        c = memory.learning
        model = memory.models.get(memory.learner_cfg)
        candidates, calls = await synthetic_hints(model, memory.benchmark, problems, max_new=c["max_new"],
                                                  max_tokens=c["max_tokens"])
        where = {"epoch": -1, "round": -1}
        with memory.store.transaction():
            ops = memory.curator().apply(candidates, {}, {}, where, check_leaks=False)
            memory.store.set_meta("synthetic_done", {"problems": len(problems), "candidates": len(candidates)})
        memory.record_health(-1, -1, len(problems), ops, sum_usage(c["usage"] for c in calls),
                             candidates=len(candidates), unusable=sum(1 for c in calls if c["error"]))


class OnlineExperience(NoExperience):
    """Learn from each round's records once they are on disk: the learner distills traces into candidate
    insights, the curator adds, merges, counts outcomes and retires."""

    learns = True

    async def prepare(self, memory: SparkMemory, problems: Sequence[Problem]) -> None:
        if memory.learns and memory.learning["screen"]:
            from spark_eval.memory.kb import load_api_names
            from spark_eval.memory.screen import InsightScreen, harness_texts

            memory.screen = InsightScreen(load_api_names(memory.kb_cfg), harness_texts(memory.benchmark.prompts))

    async def learn(self, memory: SparkMemory, records: Sequence[Record], epoch: int, round_: int) -> None:
        """Learn from a round's records (already on disk). Records learned before (a resumed run) are skipped."""
        store = memory.store
        finished = [r for r in records if r.exec]
        known = store.known_traces([trace_key(r) for r in finished])
        fresh = [r for r in finished if trace_key(r) not in known]  # a redone record's round-mates were learned
        traces = [trace_of(r, memory.problems[r.problem_id]) for r in fresh]
        if not traces:
            return
        where = {"epoch": epoch, "round": round_}
        try:
            candidates, calls = await memory.learner().distill(traces)
            if memory.poison_rate:
                candidates = poison_some(candidates, memory.poison_rate, f"{traces[0]['key']}/{epoch}/{round_}")
        except BudgetExhausted:
            raise  # not a failure of the learner: the run stops at its cap, and a resume learns these traces first
        except ModelCallError as e:
            # an outage: nothing is stored and the run stops, so that no later round runs on a memory without
            # this one; the resume learns these traces first, then goes on, as a run without the outage would
            memory.record_health(epoch, round_, len(traces), Counter(), {}, learner_failed=str(e)[:500])
            raise
        with store.transaction():
            if not store.add_traces(traces):
                return  # another process learned these already
            for call in calls:
                if call["error"]:
                    store.log_ops([{"op": "REJECT", "item_id": None, **where,
                                    "detail": {"reason": f"learner reply unusable: {call['error']}",
                                               "raw": (call["raw"] or "")[:2000], "sources": call["sources"]}}])
            texts = {t["problem_id"]: t["problem"] for t in traces}
            references = {t["problem_id"]: memory.problems[t["problem_id"]].reference_code for t in traces}
            ops = memory.curator().apply(candidates, references, outcomes(fresh), where, problem_texts=texts,
                                         graded=graded(fresh))
        memory.load_insights()
        memory.record_health(epoch, round_, len(traces), ops, sum_usage(c["usage"] for c in calls),
                             candidates=len(candidates), unusable=sum(1 for c in calls if c["error"]))


EXPERIENCES = {"online": OnlineExperience, "paper_synthetic": SyntheticExperience, "frozen": FrozenExperience,
               "none": NoExperience}


def experience_part(name: str) -> NoExperience:
    """The part `memory.experience=<name>` names."""
    if name not in EXPERIENCES:
        raise MemoryConfigError(f"memory.experience={name} is unknown; choose one of: {', '.join(EXPERIENCES)}")
    return EXPERIENCES[name]()


def trace_key(record: Record) -> str:
    """A record's trace key in the store, which runs of several models and conditions may share."""
    return f"{record.model}/{record.memory}/s{record.seed}/{record.key}"


def trace_of(record: Record, problem: Problem) -> dict[str, Any]:
    """What the learner is shown of a finished record."""
    # a judge that saw the reference solution gives its score only: its words could carry the answer into memory
    verdicts = [f"quality {j.score:.1f}/5" + ("" if j.judge.endswith("+ref") or not j.rationale
                                             else f": {j.rationale[:200]}")
                for j in record.judgments if j.kind == "quality" and j.score is not None]
    return {
        "key": trace_key(record),
        "source": source_of(problem, record.key, record.epoch, -1, record.model),
        "problem_id": problem.problem_id, "library": problem.library, "problem": problem.prompt,
        "advice": record.recommendation.text if record.recommendation else "", "code": record.code or "",
        "status": record.status, "error_type": record.exec.error_type,
        "stderr_tail": record.exec.stderr_tail or "", "verdicts": verdicts,
    }


def _passed(record: Record) -> bool | None:
    """Whether the benchmark's tests passed (a timeout fails); None when the record was not graded (an infra
    error, a skip)."""
    return record.passed if record.status in GRADED else None


def outcomes(records: Sequence[Record]) -> dict[str, tuple[int, int]]:
    """(helpful, harmful) increments per insight: a record that used it passed, or failed/timed out."""
    counts: dict[str, list[int]] = {}
    for record in records:
        passed = _passed(record)
        if passed is None:
            continue
        items = [i for i in (record.recommendation.items if record.recommendation else ()) if i.get("kind") == "insight"]
        used = [i for i in items if i.get("cited")] or items
        for item in used:
            pair = counts.setdefault(item["id"], [0, 0])
            pair[0 if passed else 1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def graded(records: Sequence[Record]) -> tuple[int, int]:
    """(passed, failed or timed out) over graded records: the base rate insights' outcomes are weighed against."""
    verdicts = [_passed(r) for r in records]
    return verdicts.count(True), verdicts.count(False)


def sum_usage(usages: Any) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for usage in usages:
        merge_usage(total, usage)
    return total


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


def source_of(problem: Problem, record_key: str, epoch: int, round_: int, model: str) -> dict[str, Any]:
    """The provenance entry of a trace: the problem, and the model whose attempt it was (its contributor)."""
    library, origin = problem.origin_family
    return {"problem_id": problem.problem_id, "family": f"{library}/{origin}", "record_key": record_key,
            "epoch": epoch, "round": round_, "model": model}


async def synthetic_hints(model: ChatModel, benchmark: Benchmark, problems: Sequence[Problem], max_new: int = 3, max_tokens: int = 768,
                          concurrency: int = 4) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """The paper's synthetic experience for every problem: attempt, then hints written with the reference
    in view. Returns the candidates and one usage/error report per problem (an unusable reply adds nothing);
    a call that fails after its retries raises ModelCallError, so the memory is not silently left without it."""
    slots = asyncio.Semaphore(concurrency)

    async def one(problem: Problem) -> tuple[list[Candidate], dict[str, Any]]:
        source = source_of(problem, f"synthetic/{problem.problem_id}", epoch=-1, round_=-1, model=model.name)
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
