"""Spark: documentation knowledge base + curated experience + retrieval agent, and its ablations.

One class serves every memory condition of the README ("Spark memory"); the config picks the parts:

- `mode`: `agent` (plan, search, cited recommendation), `raw_rag` (the top-k items pasted, no agent) or
  `playbook` (every active insight in context, no retrieval);
- `sources`: `docs` and/or `insights`;
- `experience`: `online` (learn from the stream's own feedback after each round), `paper_synthetic`
  (the paper's hints written with the reference answer in view; leaky), `frozen` (a copy of `frozen_store`,
  learned by another run, perhaps on another benchmark; read, never written) or `none`.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Collection, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.data.base import Benchmark
from spark_eval.memory.agent import AGENT_VERSION, RetrievalAgent
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.embed import CachedEmbedder, Embedder
from spark_eval.memory.experience import EXPERIENCE_SOURCES, source_of, synthetic_hints
from spark_eval.memory.index import Hit, HybridIndex, IndexItem
from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learn import LEARNER_VERSION, Curator, CurationPolicy, Learner, insight_text
from spark_eval.memory.store import Item, MemoryStore, copy_store, open_store
from spark_eval.models.base import ModelCallError
from spark_eval.models.pool import ModelPool
from spark_eval.models.structured import merge_usage
from spark_eval.types import Problem
from spark_eval.records import GRADED, Recommendation, Record, append_jsonl, read_lines

log = logging.getLogger(__name__)

MODES = ("agent", "raw_rag", "playbook")
SOURCES = ("docs", "insights")
QUERY_CHARS = 2000
# DS-1000's prompt format around the statement: its header, the solution placeholder and the code fences.
_BOILERPLATE = re.compile(r"^Problem:\s*$|result = \.\.\. # put solution in this variable|BEGIN SOLUTION|"
                          r"# SOLUTION START|</?code>", re.M)


def prompt_query(prompt: str, cap: int = QUERY_CHARS) -> str:
    """What raw RAG searches for a problem: its statement, the text before DS-1000's `A:` code block, without the
    format's boilerplate and without lines that are mostly data (tables, literals: under half letters); a prompt
    without that block (Matplotlib's: code whose comments ask) whole, less its boilerplate; on one line, cut at
    `cap` characters. On bench/bench_recall.py over the full KB this lifts BM25's recall@10 from 0.139 (the
    prompt's first 2,000 characters) to 0.176, and MiniLM's hybrid (every chunk embedded, RRF 60/100/1) from
    0.237 to 0.252 (measured before code-only prompts were kept whole)."""
    statement, code_block, _ = prompt.partition("\nA:\n")
    lines = [line.strip() for line in _BOILERPLATE.sub(" ", statement).splitlines()]
    kept = [line for line in lines if line and (not code_block or sum(c.isalpha() for c in line) >= len(line) / 2)]
    return " ".join(kept)[:cap]


class SparkMemory:
    """The configured memory condition over a run's own store (and the shared documentation KB).

    Args:
        name: the condition's name (`spark`, `docs_only`, ...).
        mode, sources, experience: see the module docstring.
        exclude_family: never show insights learned from a problem of the same origin family.
        store: the experience store file; None keeps it in the run directory (`memory/store.sqlite`).
        frozen_store: with `experience=frozen`, the store to copy into the run's store when the run starts.
        kb: documentation knowledge base settings (grading interpreter, libraries, cache folder).
        embedder: the embedder's config (`_target_`).
        agent_model, learner_model: model configs (shared with the coder's when equal).
        retrieval: `k` items for raw_rag, `per_query`, `max_items`, `rrf_k`, `candidates`.
        learning: Learner and CurationPolicy settings.
        leakage: the n-gram guard's `n` and `threshold`.
        playbook_chars: cap of the playbook's text.
        models: the run's ModelPool; run_dir: the run directory; benchmark: the run's benchmark.
    """

    def __init__(self, name: str, mode: str, sources: Sequence[str], experience: str, exclude_family: bool,
                 store: str | None, kb: DictConfig, embedder: DictConfig, agent_model: DictConfig,
                 learner_model: DictConfig, retrieval: DictConfig, learning: DictConfig, leakage: DictConfig,
                 playbook_chars: int = 6000, frozen_store: str | None = None, models: ModelPool | None = None,
                 run_dir: Path | None = None, benchmark: Benchmark | None = None) -> None:
        _check_choice("memory.mode", mode, MODES)
        _check_choice("memory.experience", experience, EXPERIENCE_SOURCES)
        for source in sources:
            _check_choice("memory.sources", source, SOURCES)
        self.name, self.mode, self.sources, self.experience = name, mode, tuple(sources), experience
        self.exclude_family = exclude_family
        self.leaky = experience == "paper_synthetic"
        self.learns = experience == "online" and "insights" in self.sources
        self.benchmark = benchmark
        self.memory_dir = Path(run_dir) / "memory" if run_dir else None
        store_path = Path(store) if store else (self.memory_dir / "store.sqlite" if self.memory_dir else None)
        if store_path is None:
            raise MemoryConfigError("memory.store is not set and there is no run directory to keep it in")
        self.store_path = store_path
        if experience == "frozen" and not frozen_store:
            raise MemoryConfigError("memory.experience=frozen needs memory.frozen_store=<a learned store.sqlite>")
        self.frozen_store = frozen_store
        self.frozen_from: str | None = None  # the state hash of the copy, once taken
        self.kb_cfg, self.retrieval, self.playbook_chars = kb, retrieval, playbook_chars
        self.guard = LeakGuard(n=leakage.n, threshold=leakage.threshold)
        self._embedder_cfg = embedder
        self._models = models
        self._agent_cfg, self._learner_cfg = agent_model, learner_model
        self.learning = OmegaConf.to_container(learning, resolve=True)
        self.store: MemoryStore | None = None
        self.kb: Any = None  # a kb.KnowledgeBase when docs are a source
        self.embedder: Embedder | None = None
        self.insights: HybridIndex | None = None
        self._insight_items: dict[str, Item] = {}
        self.problems: dict[int, Problem] = {}
        self.health: list[dict[str, Any]] = []
        self.screen: Any = None  # a screen.InsightScreen for the online learner's insights

    # -- the Memory protocol --------------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        found = {"memory": f"{self.mode}:{'+'.join(self.sources)}:{self.experience}", "agent": AGENT_VERSION,
                 "learner": LEARNER_VERSION, "embedder": self._embedder_name()}
        if "docs" in self.sources:
            from spark_eval.memory.docs import BUILDER_VERSION

            found["docs"] = BUILDER_VERSION
        return found

    async def prepare(self, problems: Sequence[Problem]) -> None:
        """Open the store, load (or build once) the documentation KB, write synthetic experience if asked."""
        self.problems = {p.problem_id: p for p in problems}
        if self.experience == "frozen" and not self.store_path.exists():
            self.frozen_from = copy_store(self.frozen_store, self.store_path)
            log.info("memory: a frozen copy of %s (state %s)", self.frozen_store, self.frozen_from[:12])
        self.store = open_store(self.store_path)
        raw_embedder = instantiate(self._embedder_cfg)
        self.embedder = CachedEmbedder(raw_embedder, self.store)
        if "docs" in self.sources:
            from spark_eval.memory.kb import load_knowledge_base  # walks libraries: only when docs are used

            self.kb = load_knowledge_base(self.kb_cfg, raw_embedder)
        if self.experience == "paper_synthetic" and not self.store.get_meta("synthetic_done"):
            await self._write_synthetic_experience(problems)
        if self.learns and self.learning["screen"]:
            from spark_eval.memory.kb import load_api_names
            from spark_eval.memory.screen import InsightScreen, harness_texts

            self.screen = InsightScreen(load_api_names(self.kb_cfg), harness_texts())
        self._load_insights()
        if self.memory_dir:
            self.memory_dir.mkdir(parents=True, exist_ok=True)
            self.health = read_lines(self.memory_dir / "health.jsonl")

    async def recommend(self, problem: Problem) -> Recommendation | None:
        exclude = self._excluded(problem)
        if self.mode == "agent":
            rec = await self._agent().recommend(problem, self, exclude)
        elif self.mode == "raw_rag":
            rec = self._raw_rag(problem, exclude)
        else:
            rec = self._playbook(exclude)
        return self._guarded(rec, problem)

    async def learn(self, records: Sequence[Record], epoch: int, round_: int) -> None:
        """Learn from a round's records (already on disk). Records learned before (a resumed run) are skipped."""
        if not self.learns or not records:
            return
        finished = [r for r in records if r.exec]
        known = self.store.known_traces([_trace_key(r) for r in finished])
        fresh = [r for r in finished if _trace_key(r) not in known]  # a redone record's round-mates were learned
        traces = [self._trace(r) for r in fresh]
        if not traces:
            return
        where = {"epoch": epoch, "round": round_}
        try:
            candidates, calls = await self._learner().distill(traces)
        except ModelCallError as e:
            # an outage: nothing is stored and the run stops, so that no later round runs on a memory without
            # this one; the resume learns these traces first, then goes on, as a run without the outage would
            self._record_health(epoch, round_, len(traces), Counter(), {}, learner_failed=str(e)[:500])
            raise
        with self.store.transaction():
            if not self.store.add_traces(traces):
                return  # another process learned these already
            for call in calls:
                if call["error"]:
                    self.store.log_ops([{"op": "REJECT", "item_id": None, **where,
                                         "detail": {"reason": f"learner reply unusable: {call['error']}",
                                                    "raw": (call["raw"] or "")[:2000], "sources": call["sources"]}}])
            texts = {t["problem_id"]: t["problem"] for t in traces}
            ops = self._curator().apply(candidates, self._references(traces), _outcomes(fresh), where,
                                        problem_texts=texts, graded=_graded(fresh))
        self._load_insights()
        self._record_health(epoch, round_, len(traces), ops, _sum_usage(c["usage"] for c in calls), candidates=len(candidates),
                            unusable=sum(1 for c in calls if c["error"]))

    def state_hash(self) -> str:
        parts = [self.kb.hash if self.kb else "", self.store.state_hash("insight") if self.store else ""]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def checkpoint(self, epoch: int) -> None:
        """A snapshot of the experience store for this epoch, and the latest one, in the run directory."""
        if self.memory_dir and self.store:
            self.store.snapshot(self.memory_dir / f"epoch{epoch}")
            self.store.snapshot(self.memory_dir / "final")

    def describe(self) -> dict[str, Any]:
        """The manifest's `memory` section."""
        insights = self.store.items(kind="insight", status=None) if self.store else []
        ops = Counter(op["op"] for op in self.store.ops()) if self.store else Counter()
        learned = ops["ADD"] + ops["MERGE"]
        return {
            "name": self.name, "mode": self.mode, "sources": list(self.sources), "experience": self.experience,
            "exclude_family": self.exclude_family, "leaky": self.leaky, "embedder": self._embedder_name(),
            "frozen_store": self.frozen_store,
            "kb_chunks": self.kb.chunks_by_library if self.kb else {},
            "kb_hash": self.kb.hash if self.kb else None,
            "kb_embedder": self.kb.embedder if self.kb else None,
            "kb_dense": self.kb.dense if self.kb else None,
            "insights": sum(1 for i in insights if i.status == "active"),
            "retired": sum(1 for i in insights if i.status == "retired"),
            "learner_failures": sum(1 for h in self.health if h.get("learner_failed")),
            "duplicate_rate": ops["MERGE"] / learned if learned else None,
            "ops": dict(sorted(ops.items())),
            "state_hash": self.state_hash(),
            "health": self.health,
            "ledger": {"learner": _sum_usage(h.get("usage") or {} for h in self.health)},
        }

    def close(self) -> None:
        if self.store:
            self.store.close()
        if self.kb is not None:
            self.kb.store.close()

    # -- Recall (what the agent searches) -------------------------------------------------------------

    def search(self, query: str, libraries: Collection[str] | None, exclude_families: Collection[str],
               k: int) -> list[Hit]:
        """Hybrid search over the enabled sources; docs and insights merged by their fused scores."""
        vector = self.embedder.embed([query])[0]
        hits: list[Hit] = []
        if self.kb is not None:
            hits += self.kb.index.search(query, vector, k=k, libraries=libraries, mode="hybrid")
        if self.insights is not None and len(self.insights):
            hits += self.insights.search(query, vector, k=k, libraries=libraries, exclude_families=exclude_families,
                                         mode="hybrid")
        return sorted(hits, key=lambda h: (-h.score, h.id))[:k]

    def fetch(self, ids: Sequence[str]) -> dict[str, Item]:
        found = {i: self._insight_items[i] for i in ids if i in self._insight_items}
        rest = [i for i in ids if i not in found]
        if rest and self.kb is not None:
            found.update({item.id: item for item in self.kb.store.get_items(rest)})
        return found

    # -- parts ----------------------------------------------------------------------------------------

    def _agent(self) -> RetrievalAgent:
        if not hasattr(self, "_agent_obj"):
            r = self.retrieval
            self._agent_obj = RetrievalAgent(self._models.get(self._agent_cfg), per_query=r.per_query,
                                             max_items=r.max_items, item_chars=r.item_chars, max_tokens=r.max_tokens)
        return self._agent_obj

    def _learner(self) -> Learner:
        if not hasattr(self, "_learner_obj"):
            c = self.learning
            self._learner_obj = Learner(self._models.get(self._learner_cfg), traces_per_call=c["traces_per_call"],
                                        max_new=c["max_new"], max_tokens=c["max_tokens"])
        return self._learner_obj

    def _curator(self) -> Curator:
        c = self.learning
        policy = CurationPolicy(duplicate_threshold=c["duplicate_threshold"], retire_margin=c["retire_margin"],
                                max_insights=c["max_insights"])
        return Curator(self.store, self.embedder, policy, self.guard, self.screen)

    def _embedder_name(self) -> str:
        target = str(self._embedder_cfg.get("_target_", ""))
        return str(self._embedder_cfg.get("model") or target.rsplit(".", 1)[-1])

    def _excluded(self, problem: Problem) -> tuple[str, ...]:
        library, origin = problem.origin_family
        return (f"{library}/{origin}",) if self.exclude_family else ()

    def _raw_rag(self, problem: Problem, exclude: Collection[str]) -> Recommendation:
        query = prompt_query(problem.prompt)
        hits = self.search(query, [problem.library], exclude, int(self.retrieval.k))
        items = self.fetch([h.id for h in hits])
        text = "\n\n".join(f"[{h.id}] {items[h.id].title}\n{items[h.id].content}" for h in hits if h.id in items)
        shown = tuple({"id": h.id, "kind": h.kind, "score": round(h.score, 6)} for h in hits)
        return Recommendation(text=text, items=shown, trace={"queries": [{"query": query[:200],
                                                                           "hits": [h.id for h in hits]}]},
                              error=None if text else "nothing retrieved")

    def _playbook(self, exclude: Collection[str]) -> Recommendation:
        chosen, size = [], 0
        for item in sorted(self._insight_items.values(), key=lambda i: (-(i.helpful - i.harmful), -i.endorsements, i.id)):
            if set(item.families) & set(exclude):
                continue
            entry = f"[{item.id}] {item.title}\n{item.content}"
            if size + len(entry) > self.playbook_chars:
                break
            chosen.append((item, entry))
            size += len(entry)
        text = "\n\n".join(entry for _, entry in chosen)
        return Recommendation(text=text, items=tuple({"id": i.id, "kind": "insight", "score": 1.0} for i, _ in chosen),
                              error=None if text else "the playbook is empty")

    def _guarded(self, rec: Recommendation, problem: Problem) -> Recommendation:
        """Flag the advice and every retrieved item that overlaps the problem's reference code."""
        reference = problem.reference_code
        items = self.fetch([i["id"] for i in rec.items])
        flagged = tuple({**i, "leak": i["id"] in items and self.guard.leaks(items[i["id"]].content, reference)}
                        for i in rec.items)
        overlap = round(self.guard.score(rec.text, reference), 4) if rec.text else 0.0
        leak = (bool(rec.text) and self.guard.leaks(rec.text, reference)) or any(i["leak"] for i in flagged)
        return Recommendation(text=rec.text, plan=rec.plan, items=flagged, leak_flag=leak,
                              trace={**rec.trace, "reference_overlap": overlap}, error=rec.error)

    def _load_insights(self) -> None:
        if "insights" not in self.sources:
            return
        items = self.store.items(kind="insight")
        self._insight_items = {i.id: i for i in items}
        if not items:
            self.insights = None
            return
        texts = [insight_text(i) for i in items]
        vectors = self.embedder.embed(texts)
        index_items = [IndexItem(id=i.id, kind="insight", library=i.library, families=tuple(i.families), text=t)
                       for i, t in zip(items, texts)]
        self.insights = HybridIndex(index_items, vectors, rrf_k=int(self.retrieval.rrf_k),
                                    candidates=int(self.retrieval.candidates),
                                    dense_weight=float(self.retrieval.dense_weight))

    async def _write_synthetic_experience(self, problems: Sequence[Problem]) -> None:
        c = self.learning
        model = self._models.get(self._learner_cfg)
        candidates, calls = await synthetic_hints(model, self.benchmark, problems, max_new=c["max_new"], max_tokens=c["max_tokens"])
        where = {"epoch": -1, "round": -1}
        with self.store.transaction():
            ops = self._curator().apply(candidates, {}, {}, where, check_leaks=False)
            self.store.set_meta("synthetic_done", {"problems": len(problems), "candidates": len(candidates)})
        self._record_health(-1, -1, len(problems), ops, _sum_usage(c["usage"] for c in calls), candidates=len(candidates),
                            unusable=sum(1 for c in calls if c["error"]))

    def _trace(self, record: Record) -> dict[str, Any]:
        problem = self.problems[record.problem_id]
        # a judge that saw the reference solution gives its score only: its words could carry the answer into memory
        verdicts = [f"quality {j.score:.1f}/5" + ("" if j.judge.endswith("+ref") or not j.rationale
                                                 else f": {j.rationale[:200]}")
                    for j in record.judgments if j.kind == "quality" and j.score is not None]
        return {
            "key": _trace_key(record),
            "source": source_of(problem, record.key, record.epoch, -1),
            "problem_id": problem.problem_id, "library": problem.library, "problem": problem.prompt,
            "advice": record.recommendation.text if record.recommendation else "", "code": record.code or "",
            "status": record.status, "error_type": record.exec.error_type,
            "stderr_tail": record.exec.stderr_tail or "", "verdicts": verdicts,
        }

    def _references(self, traces: Sequence[dict[str, Any]]) -> dict[int, str]:
        return {t["problem_id"]: self.problems[t["problem_id"]].reference_code for t in traces}

    def _record_health(self, epoch: int, round_: int, seen: int, ops: Counter, usage: dict[str, Any],
                       **extra: Any) -> None:
        active = self.store.items(kind="insight")
        learned = ops["ADD"] + ops["MERGE"]
        row = {"epoch": epoch, "round": round_, "records_seen": seen, "insights": len(active),
               "tokens": sum(len(insight_text(i)) // 4 for i in active),
               "duplicate_rate": ops["MERGE"] / learned if learned else None,
               "ops": dict(sorted(ops.items())), "usage": usage, **extra}
        self.health.append(row)
        if self.memory_dir:
            self.memory_dir.mkdir(parents=True, exist_ok=True)
            append_jsonl(self.memory_dir / "health.jsonl", row)


def _trace_key(record: Record) -> str:
    """A record's trace key in the store, which runs of several models and conditions may share."""
    return f"{record.model}/{record.memory}/s{record.seed}/{record.key}"


def _passed(record: Record) -> bool | None:
    """Whether the benchmark's tests passed (a timeout fails); None when the record was not graded (an infra
    error, a skip)."""
    return record.passed if record.status in GRADED else None


def _outcomes(records: Sequence[Record]) -> dict[str, tuple[int, int]]:
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


def _graded(records: Sequence[Record]) -> tuple[int, int]:
    """(passed, failed or timed out) over graded records: the base rate insights' outcomes are weighed against."""
    verdicts = [_passed(r) for r in records]
    return verdicts.count(True), verdicts.count(False)


def _sum_usage(usages: Any) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for usage in usages:
        merge_usage(total, usage)
    return total


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise MemoryConfigError(f"{key}={value} is unknown; choose one of: {', '.join(choices)}")
