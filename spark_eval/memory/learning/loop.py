"""A round of learning: a round's records -> their traces -> the learner's candidates -> the outcomes of the insights
the records used -> curation of the store, and the health row the round leaves. `LearningLoop` owns it, and it is
all that an experience source (`experience.py`) is given."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from spark_eval.data.base import Benchmark
from spark_eval.memory.embed import Embedder
from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learning.curator import Curator, CurationPolicy
from spark_eval.memory.learning.learner import Candidate, Learner, insight_text
from spark_eval.memory.learning.poison import poison_some
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.docs.apilabels import ApiNames, api_labels
from spark_eval.memory.learning.screen import InsightScreen, SourceFacts, code_names, last_parts
from spark_eval.memory.store.base import MemoryStore, is_database_url
from spark_eval.models.base import ChatModel, ModelCallError, ModelUnavailable
from spark_eval.models.ledger import BudgetExhausted
from spark_eval.records import GRADED, Record, RetrievedItem, Usage, append_jsonl, read_lines
from spark_eval.records.run import HEALTH, RunFiles, holds_records
from spark_eval.types import Problem

log = logging.getLogger(__name__)


HARM_RULES = ("base_rate", "paired")


class LearningLoop:
    """What learning uses (the store, the learner, the curator and its screen, the stream's problems) and the round.

    Args:
        store_location: the store: a file, or a database URL.
        frozen_store: the store (file or URL) `experience=frozen` copies into the run's; None otherwise.
        learns: whether the memory learns (its experience part does, and insights are a source).
        learning: Learner and CurationPolicy settings (`memory.learning`).
        poison_rate: the share of learned insights the poisoning arm replaces (`poison.py`).
        poison_past_screen: its lessons skip the screen (CurationPolicy.poison_past_screen).
        guard: the leak guard curation checks candidates against the references with.
        learner_model: gives the learner's ChatModel (loaded when first asked).
        benchmark: the run's benchmark (how a problem is put to a coder, and its prompts).
        memory_dir: where `health.jsonl` is kept; None keeps the rows in memory only.
    """

    def __init__(self, store_location: str, frozen_store: str | None, learns: bool, learning: dict[str, Any],
                 poison_rate: float, guard: LeakGuard, learner_model: Callable[[], ChatModel],
                 benchmark: Benchmark | None, memory_dir: Path | None, poison_past_screen: bool = False) -> None:
        self.store_location = store_location
        self.store_path = None if is_database_url(store_location) else Path(store_location)
        """The store's file; None for a store on a database server."""
        self.frozen_store = frozen_store
        self.learns, self.learning, self.poison_rate = learns, learning, poison_rate
        self.poison_past_screen = poison_past_screen
        if learning.get("harm", "base_rate") not in HARM_RULES:
            raise MemoryConfigError(f"memory.learning.harm={learning['harm']} is unknown; choose one of: "
                                    f"{', '.join(HARM_RULES)}")
        self.guard = guard
        self.learner_model = learner_model
        self.benchmark = benchmark
        self.memory_dir = memory_dir
        self.store: MemoryStore | None = None
        self.embedder: Embedder | None = None
        self.problems: Mapping[int, Problem] = {}
        self.documented: Mapping[str, frozenset[str]] = {}
        """Each library's documented qualified names (what the screen wants an insight to name)."""
        self.screen: InsightScreen | None = None
        self._api_names: ApiNames | None = None
        self.baseline: dict[tuple[str, int], bool] = {}
        """harm=paired: (coder, problem id) -> whether its answer without memory passed."""
        self.health: list[dict[str, Any]] = []
        self._learner: Learner | None = None

    def attach(self, store: MemoryStore, embedder: Embedder, problems: Sequence[Problem],
               documented: Mapping[str, frozenset[str]]) -> None:
        """The opened store, its embedder, the stream's problems and the documented names, once the memory has
        them; and the health rows of the rounds learned before (a resumed run)."""
        self.store, self.embedder, self.documented = store, embedder, documented
        self.problems = {p.problem_id: p for p in problems}
        if self.learns and self.learning.get("harm") == "paired":
            self.baseline = baseline_outcomes(self.learning.get("baseline") or [])
        if self.memory_dir:
            self.health = read_lines(self.memory_dir / HEALTH)

    def learner(self) -> Learner:
        if self._learner is None:
            c = self.learning
            self._learner = Learner(self.learner_model(), traces_per_call=c["traces_per_call"],
                                    max_new=c["max_new"], max_tokens=c["max_tokens"])
        return self._learner

    def curator(self) -> Curator:
        c = self.learning
        policy = CurationPolicy(duplicate_threshold=c["duplicate_threshold"], retire_margin=c["retire_margin"],
                                max_insights=c["max_insights"], harm=c.get("harm", "base_rate"),
                                poison_past_screen=self.poison_past_screen)
        return Curator(self.store, self.embedder, policy, self.guard, self.screen)

    async def round(self, records: Sequence[Record], epoch: int, round_: int) -> None:
        """Learn from a round's records (already on disk). Records learned before (a resumed run) are skipped."""
        fresh, traces = self._fresh_traces(records)
        if not traces:
            return
        where = {"epoch": epoch, "round": round_}
        try:
            candidates, calls = await self._distilled(traces, epoch, round_)
        except (BudgetExhausted, ModelUnavailable):
            raise  # not a failure of the learner: the run stops (at its cap, or in one line), a resume learns these first
        except ModelCallError as e:
            # an outage: nothing is stored and the run stops, so that no later round runs on a memory without
            # this one; the resume learns these traces first, then goes on, as a run without the outage would
            self.record_health(epoch, round_, len(traces), Counter(), Usage(), learner_failed=str(e)[:500])
            raise
        store = self.store
        with store.transaction():
            if not store.add_traces(traces):
                return  # another process learned these already
            for call in calls:
                if call["error"]:
                    store.log_ops([unusable_reply(call, where)])
            references = {t["problem_id"]: self.problems[t["problem_id"]].reference_code for t in traces}
            moved = paired_outcomes(fresh, self.baseline) if self.learning.get("harm") == "paired" else outcomes(fresh)
            ops = self.curator().apply(candidates, references, moved, where, facts=self.source_facts(fresh),
                                       graded=graded(fresh))
        self.record_health(epoch, round_, len(traces), ops, sum((c["usage"] for c in calls), Usage()),
                           candidates=len(candidates), unusable=sum(1 for c in calls if c["error"]))

    def _fresh_traces(self, records: Sequence[Record]) -> tuple[list[Record], list[dict[str, Any]]]:
        """The finished records the store has not learned from, and their traces."""
        finished = [r for r in records if r.exec]
        known = self.store.known_traces([trace_key(r) for r in finished])
        fresh = [r for r in finished if trace_key(r) not in known]  # a redone record's round-mates were learned
        return fresh, [trace_of(r, self.problems[r.problem_id]) for r in fresh]

    def source_facts(self, records: Sequence[Record]) -> dict[int, SourceFacts]:
        """What the screen checks the round's candidates against, per problem: its text and library, and the APIs its
        attempts met (the documents shown to them, the reference's labelled APIs, the names their code calls)."""
        met: dict[int, set[str]] = {}
        for record in records:
            labels = record.recommendation.api_labels if record.recommendation else None
            if labels is None:  # the memory labels every record it advises; labelled here only when it did not
                labels = api_labels(self.problems[record.problem_id], self._labeller())
            met.setdefault(record.problem_id, set()).update(last_parts(shown_documents(record)),
                                                            code_names(record.code or ""), last_parts(labels))
        return {problem_id: SourceFacts(self.problems[problem_id].library, self.problems[problem_id].prompt,
                                        frozenset(names)) for problem_id, names in met.items()}

    def _labeller(self) -> ApiNames:
        if self._api_names is None:
            self._api_names = ApiNames(self.documented)
        return self._api_names

    async def _distilled(self, traces: Sequence[dict[str, Any]], epoch: int,
                         round_: int) -> tuple[list[Candidate], list[dict[str, Any]]]:
        """The learner's candidates from the traces (a share of them poisoned, for the poisoning arm) and its calls."""
        candidates, calls = await self.learner().distill(traces)
        if self.poison_rate:
            candidates = poison_some(candidates, self.poison_rate, f"{traces[0]['key']}/{epoch}/{round_}")
        return candidates, calls

    def record_health(self, epoch: int, round_: int, seen: int, ops: Counter, usage: Usage,
                      **extra: Any) -> None:
        """One row of memory/health.jsonl: the store after a round of learning."""
        active = self.store.items(kind="insight")
        learned = ops["ADD"] + ops["MERGE"]
        row = {"epoch": epoch, "round": round_, "records_seen": seen, "insights": len(active),
               "tokens": sum(len(insight_text(i)) // 4 for i in active),
               "duplicate_rate": ops["MERGE"] / learned if learned else None,
               "ops": dict(sorted(ops.items())), "usage": usage.to_json(), **extra}
        self.health.append(row)
        if self.memory_dir:
            self.memory_dir.mkdir(parents=True, exist_ok=True)
            append_jsonl(self.memory_dir / HEALTH, row)


def unusable_reply(call: dict[str, Any], where: dict[str, int]) -> dict[str, Any]:
    """The REJECT op that logs a learner reply nothing could be read from."""
    return {"op": "REJECT", "item_id": None, **where,
            "detail": {"reason": f"learner reply unusable: {call['error']}", "raw": (call["raw"] or "")[:2000],
                       "sources": call["sources"]}}


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
        "documents": shown_documents(record),
        "status": record.status, "error_type": record.exec.error_type,
        "stderr_tail": record.exec.stderr_tail or "", "verdicts": verdicts,
    }


def shown_documents(record: Record) -> list[str]:
    """The qualified names of the documents the record's advice was written from (`doc:<module>:<name>#<section>`)."""
    shown = record.recommendation.items if record.recommendation else ()
    return list(dict.fromkeys(i.id.split(":", 2)[-1].split("#")[0] for i in shown if i.kind == "doc"))


def source_of(problem: Problem, record_key: str, epoch: int, round_: int, model: str) -> dict[str, Any]:
    """The provenance entry of a trace: the problem, and the model whose attempt it was (its contributor)."""
    library, origin = problem.origin_family
    return {"problem_id": problem.problem_id, "family": f"{library}/{origin}", "record_key": record_key,
            "epoch": epoch, "round": round_, "model": model}


def _passed(record: Record) -> bool | None:
    """Whether the benchmark's tests passed (a timeout fails); None when the record was not graded (an infra
    error, a skip)."""
    return record.passed if record.status in GRADED else None


def used_insights(record: Record) -> tuple[RetrievedItem, ...]:
    """The insights a record's outcome is charged to (`Recommendation.charged_insights`); none without advice."""
    return record.recommendation.charged_insights if record.recommendation else ()


def outcomes(records: Sequence[Record]) -> dict[str, tuple[int, int]]:
    """(helpful, harmful) increments per insight: a record that used it (`used_insights`) passed, or failed/timed
    out."""
    counts: dict[str, list[int]] = {}
    for record in records:
        passed = _passed(record)
        if passed is None:
            continue
        for item in used_insights(record):
            pair = counts.setdefault(item.id, [0, 0])
            pair[0 if passed else 1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def paired_outcomes(records: Sequence[Record], baseline: Mapping[tuple[str, int], bool]) -> dict[str, tuple[int, int]]:
    """(helpful, harmful) increments per insight against a counterfactual: a record that used it (as in `outcomes`)
    passed where the same coder without memory failed (help), or failed where it passed (harm); the same outcome
    both ways, or a problem the baseline does not hold, moves nothing (the insight is still named, at (0, 0))."""
    counts: dict[str, list[int]] = {}
    for record in records:
        passed, before = _passed(record), baseline.get((record.model, record.problem_id))
        for item in used_insights(record):
            pair = counts.setdefault(item.id, [0, 0])
            if passed is not None and before is not None and passed != before:
                pair[0 if passed else 1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items() if any(v)}


def baseline_outcomes(run_dirs: Sequence[str]) -> dict[tuple[str, int], bool]:
    """(coder, problem id) -> passed, from finished no-memory runs (their first epoch's first answers)."""
    if not run_dirs:
        raise MemoryConfigError("memory.learning.harm=paired weighs each use against the coder's own outcome without "
                                "memory: set memory.learning.baseline=[<finished memory=none run directory>, ...]")
    found: dict[tuple[str, int], bool] = {}
    for run_dir in run_dirs:
        if not holds_records(run_dir):
            raise MemoryConfigError(f"memory.learning.baseline: {run_dir} holds no records.jsonl; give a finished "
                                    "memory=none run directory of the same coders and problems")
        for record in RunFiles(run_dir).records:
            if record.memory != "none":
                raise MemoryConfigError(f"memory.learning.baseline: {run_dir} is a memory={record.memory} run; the "
                                        "counterfactual is the coder without memory (memory=none)")
            if record.epoch == 0 and record.repeat == 0 and record.status in GRADED:
                found[(record.model, record.problem_id)] = bool(record.passed)
    return found


def graded(records: Sequence[Record]) -> tuple[int, int]:
    """(passed, failed or timed out) over graded records: the base rate insights' outcomes are weighed against."""
    verdicts = [_passed(r) for r in records]
    return verdicts.count(True), verdicts.count(False)
