"""Spark and its ablations, one class per way of advising, sharing the same parts.

- `AgentMemory` (the paper's Spark): the retrieval agent plans searches and writes a cited recommendation;
- `RawRagMemory`: the top-k retrieved items pasted, no agent;
- `PlaybookMemory`: every active insight in context, no retrieval;
- `PlaceboMemory` (a control arm): the advice written for another problem of the same library, so the context has
  the shape and length of Spark's but is not about this problem;
- `OracleMemory` (a control arm, leaky by design): the reference solution's documented APIs with their summaries,
  built without a model: an upper bound on what documentation advice can do.

What they share (`SparkMemory`): the experience store, what is searched (`sources`: the documentation KB and/or
the store's insights), where experience comes from (`experience`, a part from `learning/experience.py`, given the
memory's `LearningLoop`, which also keeps the health log) and the leak guard. The conditions of docs/memory.md are
configs of these: `docs_only` is `AgentMemory` over `docs` alone, `experience_only` over `insights` alone, and so on.
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Collection, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spark_eval.data.base import Benchmark
from spark_eval.execution.environment import shown_path
from spark_eval.memory.agent import AGENT_VERSION, DRAFT_VERSION, RetrievalAgent, own_words, prompt_query
from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.docs.apilabels import ApiNames, api_labels, names_api
from spark_eval.memory.embed import CachedEmbedder, Embedder
from spark_eval.memory.gate import GATE_VERSION, build_gate
from spark_eval.memory.index import Hit, HybridIndex, IndexItem
from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learning.experience import NoExperience, experience_class, experience_part
from spark_eval.memory.learning.learner import LEARNER_VERSION, insight_text
from spark_eval.memory.learning.loop import LearningLoop
from spark_eval.memory.learning.poison import POISON_VERSION
from spark_eval.memory.store.base import LOCK_WAIT_S, Item, MemoryStore, is_database_url, shown_url
from spark_eval.memory.store.open import open_store
from spark_eval.models.calls import Call
from spark_eval.models.pool import ModelPool
from spark_eval.models.structured import RETRY_VERSION
from spark_eval.records import Recommendation, Record, RetrievedItem, Usage
from spark_eval.records.run import FINAL, MEMORY, STORE, RunFiles, epoch_snapshot, holds_records
from spark_eval.types import Problem

log = logging.getLogger(__name__)

SOURCES = ("docs", "insights")
class SparkMemory:
    """What every Spark condition shares; a subclass says how it advises (`advise`).

    Args:
        name: the condition's name (`spark`, `docs_only`, ...).
        sources: what is searched: `docs` (the documentation KB) and/or `insights` (the store's).
        experience: `online`, `paper_synthetic`, `frozen` or `none` (see learning/experience.py).
        exclude_family: never show insights learned from a problem of the same origin family.
        store: the experience store: a file, or a PostgreSQL URL (`postgresql://user@host:port/db`) that several
            runs (community members, on several machines) learn into; None keeps a file in the run directory
            (`memory/store.sqlite`).
        frozen_store: with `experience=frozen`, the store (file or URL) copied into the run's when the run starts.
        lock_wait_s: how long a writer waits for the store's write lock before the run stops, naming the holder.
        mask_contributors: models whose insights are hidden: an insight all of whose sources came from these models
            is neither searched nor shown (leave-one-contributor-out).
        poison: `rate`: the share of this run's learned insights replaced by plausible but wrong ones
            (`learning/poison.py`), marked as poison in their provenance only.
        placebo: `PlaceboMemory`'s `source` (a finished run whose advice is shown) and `seed` (its derangement).
        kb: documentation knowledge base settings (grading interpreter, libraries, cache folder).
        embedder: the embedder's config (`_target_`).
        agent_model, learner_model: model configs (shared with the coder's when equal).
        retrieval: `k` items for raw_rag, `per_query`, `max_items`, `rrf_k`, `candidates`.
        learning: Learner and CurationPolicy settings.
        leakage: the n-gram guard's `n` and `threshold`.
        playbook_chars: cap of the playbook's text.
        models: the run's ModelPool; run_dir: the run directory; benchmark: the run's benchmark.
    """

    mode = ""
    """How it advises, in its version string (`agent`, `raw_rag`, `playbook`)."""
    advises = True

    def __init__(self, name: str, sources: Sequence[str], experience: str, exclude_family: bool,
                 store: str | None, kb: DictConfig, embedder: DictConfig, agent_model: DictConfig,
                 learner_model: DictConfig, retrieval: DictConfig, learning: DictConfig, leakage: DictConfig,
                 playbook_chars: int = 6000, frozen_store: str | None = None,
                 mask_contributors: Sequence[str] = (), poison: DictConfig | None = None,
                 placebo: DictConfig | None = None, gate: DictConfig | None = None,
                 models: ModelPool | None = None, run_dir: Path | None = None,
                 benchmark: Benchmark | None = None, lock_wait_s: float = LOCK_WAIT_S) -> None:
        bad = [s for s in sources if s not in SOURCES]
        if bad:
            raise MemoryConfigError(f"memory.sources={bad[0]} is unknown; choose one of: {', '.join(SOURCES)}")
        self.name, self.sources, self.experience_name = name, tuple(sources), experience
        self.experience = experience_part(experience)
        self.docs, self.uses_insights = "docs" in self.sources, "insights" in self.sources
        self.exclude_family = exclude_family
        self.leaky = self.experience.leaky
        self.learns = learns_from(self.experience, self.sources)
        self.memory_dir = Path(run_dir) / MEMORY if run_dir else None
        location = store or (str(self.memory_dir / STORE) if self.memory_dir else None)
        if location is None:
            raise MemoryConfigError("memory.store is not set and there is no run directory to keep it in")
        self.store_location = str(location)
        self.frozen_store = frozen_store
        self.lock_wait_s = lock_wait_s
        self.mask = tuple(sorted(mask_contributors))
        self.poison_rate = float((poison or {}).get("rate", 0.0) or 0.0)
        poison_past_screen = bool((poison or {}).get("past_screen", False))
        self.placebo = dict(placebo or {})  # PlaceboMemory's settings (`source`, `seed`)
        self.gate = build_gate(gate)
        """Whether to speak at all, asked before `recommend` (pipeline/solve.py); None: always."""
        self.reads_draft = bool(retrieval.get("draft_apis", False))
        """The agent reads the documents of the APIs the coder's draft uses (`memory.retrieval.draft_apis`): the
        pipeline drafts before it advises and hands `recommend` the draft's code."""
        if self.reads_draft and (self.mode != "agent" or "docs" not in self.sources):
            raise MemoryConfigError("memory.retrieval.draft_apis is read by the retrieval agent over the documentation "
                                    "(memory=spark_drafted); set it to false for this memory")
        if not 0.0 <= self.poison_rate <= 1.0:
            raise MemoryConfigError(f"memory.poison.rate={self.poison_rate:g} is not a share; give a number in [0, 1]")
        if self.mask and self.learns:
            raise MemoryConfigError("memory.mask_contributors hides insights of a frozen memory; use it with "
                                    "memory.experience=frozen (a learning memory would curate what it cannot see)")
        self.guard = LeakGuard(n=leakage.n, threshold=leakage.threshold)
        self.models, self.agent_cfg = models, agent_model
        self.loop = LearningLoop(self.store_location, frozen_store, self.learns,
                                 OmegaConf.to_container(learning, resolve=True), self.poison_rate, self.guard,
                                 lambda: models.get(learner_model), benchmark, self.memory_dir, poison_past_screen)
        """What learning uses, and a round of it: all that the experience part is given."""
        self.experience.check(self.loop)
        for url in (location, frozen_store):  # an unreachable or wrong URL stops the run before any work
            if url and is_database_url(url):
                open_store(url, lock_wait_s).close()
        if type(self).advise is SparkMemory.advise:
            raise MemoryConfigError(f"memory._target_={type(self).__module__}.{type(self).__name__} gives no advice; "
                                    "use spark_eval.memory.spark.AgentMemory, RawRagMemory or PlaybookMemory")
        self.kb_cfg, self.retrieval, self.playbook_chars = kb, retrieval, playbook_chars
        self._embedder_cfg = embedder
        self.store: MemoryStore | None = None
        self.kb: Any = None  # a kb.KnowledgeBase when docs are a source
        self.embedder: Embedder | None = None
        self.insights: HybridIndex | None = None
        self.insight_items: dict[str, Item] = {}
        self.walked: dict[str, dict[str, Item]] = {}  # import name -> qualname -> its overview (draft_documents)
        self._loaded_hash = ""  # the store's insight state the index was built from
        self.problems: dict[int, Problem] = {}
        self.api_names: ApiNames | None = None  # every documented name, to label references (api_hits)
        self._reference_apis: dict[int, tuple[str, ...]] = {}
        self.versions = self._versions()

    # -- what the dry run asks (the memory's config is `settings`) --------------------------------------

    @classmethod
    def planned_calls(cls, settings: Any, problem: Problem) -> list[Call]:
        """The model calls `advise` makes for `problem`: none, but for the retrieval agent's."""
        return []

    @classmethod
    def planned_learning(cls, settings: Any, benchmark: Benchmark, rounds: Sequence[Sequence[Problem]]) -> list[Call]:
        """The learner's calls (its experience part's), when this memory learns or prepares experience."""
        part = experience_class(settings.experience)
        if part.learns and not learns_from(part, settings.sources):
            return []  # what it would learn is never searched, so the memory does not learn
        return part.planned_calls(settings, benchmark, rounds)

    @classmethod
    def searches_docs(cls, settings: Any) -> bool:
        return "docs" in settings.sources

    # -- the Memory protocol --------------------------------------------------------------------------

    def _versions(self) -> dict[str, str]:
        found = {"memory": f"{self.mode}:{'+'.join(self.sources)}:{self.experience_name}", "agent": AGENT_VERSION,
                 "learner": LEARNER_VERSION, "retry": RETRY_VERSION, "embedder": self._embedder_name(),
                 **self.experience.versions()}
        if self.poison_rate:
            found["poison"] = POISON_VERSION
        if self.gate:
            found["gate"] = GATE_VERSION
        if self.reads_draft:
            found["draft"] = DRAFT_VERSION
        if self.docs:
            from spark_eval.memory.docs.walk import BUILDER_VERSION

            found["docs"] = BUILDER_VERSION
        return found

    async def prepare(self, problems: Sequence[Problem]) -> None:
        """Open the store, load (or build once) the documentation KB, let the experience part prepare."""
        self.problems = {p.problem_id: p for p in problems}
        self.experience.before_open(self.loop)
        self.store = open_store(self.store_location, self.lock_wait_s)
        raw_embedder = instantiate(self._embedder_cfg)
        raw_embedder.ledger = self.models.ledger if self.models is not None else None  # a paid API's spend counts
        self.embedder = CachedEmbedder(raw_embedder, self.store)
        if self.docs:
            from spark_eval.memory.docs.kb import load_knowledge_base  # walks libraries: only when docs are used

            self.kb = load_knowledge_base(self.kb_cfg, raw_embedder)
        from spark_eval.memory.docs.kb import load_api_names  # walks libraries once per grading environment

        documented = load_api_names(self.kb_cfg)
        self.api_names = ApiNames(documented)
        self.loop.attach(self.store, self.embedder, problems, documented)
        await self.experience.prepare(self.loop, problems)
        self.load_insights()
        if self.memory_dir:
            self.memory_dir.mkdir(parents=True, exist_ok=True)

    async def recommend(self, problem: Problem, draft: str | None = None) -> Recommendation | None:
        return self._guarded(await self.advise(problem, self._excluded(problem)), problem)

    async def advise(self, problem: Problem, exclude: Collection[str]) -> Recommendation:
        """The recommendation, before the leak guard flags it."""
        raise NotImplementedError

    async def learn(self, records: Sequence[Record], epoch: int, round_: int) -> None:
        if self.learns and records:
            await self.experience.learn(self.loop, records, epoch, round_)
            # the index follows the store: this round's learning, and what other learners of a shared store added
            if self.store.state_hash("insight") != self._loaded_hash:
                self.load_insights()

    def state_hash(self) -> str:
        """The state the next problem sees: the KB and the store's insights as last loaded (a shared store may have
        moved on since), and the contributors masked, if any."""
        parts = [self.kb.hash if self.kb else "", self._loaded_hash if self.store else ""]
        if self.mask:
            parts.append("mask:" + ",".join(self.mask))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def checkpoint(self, epoch: int) -> None:
        """A snapshot of the experience store for this epoch, and the latest one, in the run directory."""
        if self.memory_dir and self.store:
            self.store.snapshot(self.memory_dir / epoch_snapshot(epoch))
            self.store.snapshot(self.memory_dir / FINAL)

    def describe(self) -> dict[str, Any]:
        """The manifest's `memory` section."""
        insights = self.store.items(kind="insight", status=None) if self.store else []
        ops = Counter(op["op"] for op in self.store.ops()) if self.store else Counter()
        learned = ops["ADD"] + ops["MERGE"]
        return {
            "name": self.name, "mode": self.mode, "sources": list(self.sources), "experience": self.experience_name,
            "exclude_family": self.exclude_family, "leaky": self.leaky, "embedder": self._embedder_name(),
            "frozen_store": self.frozen_store and shown_url(self.frozen_store),
            "store": shown_path(shown_url(self.store_location)),
            "mask_contributors": list(self.mask), "poison_rate": self.poison_rate,
            "gate": self.gate.describe() if self.gate else None,
            "kb_chunks": self.kb.chunks_by_library if self.kb else {},
            "kb_hash": self.kb.hash if self.kb else None,
            "kb_embedder": self.kb.embedder if self.kb else None,
            "kb_dense": self.kb.dense if self.kb else None,
            "insights": sum(1 for i in insights if i.status == "active"),
            "retired": sum(1 for i in insights if i.status == "retired"),
            "learner_failures": sum(1 for h in self.loop.health if h.get("learner_failed")),
            "duplicate_rate": ops["MERGE"] / learned if learned else None,
            "ops": dict(sorted(ops.items())),
            "state_hash": self.state_hash(),
            "health": self.loop.health,
            "ledger": {"learner": sum((Usage.from_json(h.get("usage") or {}) for h in self.loop.health), Usage()).to_json()},
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
        walked = {item.id: item for items in self.walked.values() for item in items.values()}
        found = {i: self.insight_items.get(i) or walked[i] for i in ids if i in self.insight_items or i in walked}
        rest = [i for i in ids if i not in found]
        if rest and self.kb is not None:
            found.update({item.id: item for item in self.kb.store.get_items(rest)})
        return found

    # -- parts ----------------------------------------------------------------------------------------

    def load_insights(self) -> None:
        """The active insights and their index, from the store (after learning changed it)."""
        with self.store.transaction():  # the items and their hash from one state, whoever else writes
            self._loaded_hash = self.store.state_hash("insight")
            items = self.store.items(kind="insight") if self.uses_insights else []
        if not self.uses_insights:
            return
        kept = [i for i in items if not self._masked(i)]
        if self.mask and len(kept) == len(items) and items:
            log.warning("memory.mask_contributors=%s hides none of the %d insights (no insight stands on these "
                        "contributors alone, or the names are not the coders' model names)", list(self.mask),
                        len(items))
        items = kept
        self.insight_items = {i.id: i for i in items}
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

    def draft_documents(self, problem: Problem, code: str) -> list[Hit]:
        """The overview documents of the documented APIs that `code`, the coder's draft of `problem` without memory,
        uses, read as a reference solution is labelled (apilabels.api_labels), in their sorted order. Taken from
        the library's documentation walk (once per library), not the KB, whose `max_chunks` may leave them out;
        `fetch` then finds them. Each is a hit of score 1, found by no search."""
        from spark_eval.memory.docs.kb import doc_item
        from spark_eval.memory.docs.walk import walk_library

        hits = []
        for name in api_labels(replace(problem, reference_code=code), self.api_names):
            module = name.split(".")[0]
            if module not in self.walked:
                self.walked[module] = {c.qualname: doc_item(c) for c in walk_library(self.kb_cfg.python, module)
                                       if c.section == "overview"}
            item = self.walked[module].get(name)
            if item is not None:
                hits.append(Hit(item.id, "doc", item.library, 1.0, None, None, None, None))
        return hits

    def reference_apis(self, problem: Problem) -> tuple[str, ...]:
        """The documented APIs `problem`'s reference solution uses (apilabels.api_labels), labelled once."""
        if problem.problem_id not in self._reference_apis:
            self._reference_apis[problem.problem_id] = api_labels(problem, self.api_names)
        return self._reference_apis[problem.problem_id]

    def _embedder_name(self) -> str:
        target = str(self._embedder_cfg.get("_target_", ""))
        return str(self._embedder_cfg.get("model") or target.rsplit(".", 1)[-1])

    def _excluded(self, problem: Problem) -> tuple[str, ...]:
        library, origin = problem.origin_family
        return (f"{library}/{origin}",) if self.exclude_family else ()

    def _masked(self, item: Item) -> bool:
        """Whether every contributor of `item` is masked (an insight others proposed too stays)."""
        return bool(self.mask) and bool(item.contributors) and set(item.contributors) <= set(self.mask)

    def _guarded(self, rec: Recommendation, problem: Problem) -> Recommendation:
        """Flag the advice and every retrieved item that overlaps the problem's reference code; name each item's
        contributors (the models its sources came from; none for documentation) and mark poison for the analysis
        (the coder and the judges see the advice's text only)."""
        reference = problem.reference_code
        items = self.fetch([i.id for i in rec.items])
        flagged = tuple(replace(i, leak=i.id in items and self.guard.leaks(items[i.id].content, reference),
                                contributors=tuple(items[i.id].contributors) if i.id in items else (),
                                poison=i.poison or (i.id in items and items[i.id].poison))
                        for i in rec.items)
        overlap = round(self.guard.score(rec.text, reference), 4) if rec.text else 0.0
        leak = (bool(rec.text) and self.guard.leaks(rec.text, reference)) or any(i.leak for i in flagged)
        labels = self.reference_apis(problem) if self.api_names is not None else None
        hits = names_api(own_words(rec.text), labels) if labels is not None else None
        return Recommendation(text=rec.text, plan=rec.plan, items=flagged, leak_flag=leak,
                              trace={**rec.trace, "reference_overlap": overlap}, error=rec.error,
                              api_labels=labels, api_hits=hits)


def learns_from(part: NoExperience | type[NoExperience], sources: Sequence[str]) -> bool:
    """Whether a memory learns during the stream: its experience part does, and insights are searched."""
    return part.learns and "insights" in sources


class AgentMemory(SparkMemory):
    """The paper's Spark: the retrieval agent plans searches over the sources and writes a cited recommendation."""

    mode = "agent"

    @classmethod
    def planned_calls(cls, settings: Any, problem: Problem) -> list[Call]:
        return RetrievalAgent.planned_calls(settings.agent_model, problem)

    async def recommend(self, problem: Problem, draft: str | None = None) -> Recommendation | None:
        drafted = self.draft_documents(problem, draft) if self.reads_draft and draft else []
        return self._guarded(await self.advise(problem, self._excluded(problem), drafted), problem)

    async def advise(self, problem: Problem, exclude: Collection[str], drafted: Sequence[Hit] = ()) -> Recommendation:
        """The agent's recommendation; `drafted`: the documents of the coder's draft's APIs, shown first."""
        if not hasattr(self, "_agent"):
            r = self.retrieval
            self._agent = RetrievalAgent(self.models.get(self.agent_cfg), per_query=r.per_query,
                                         max_items=r.max_items, item_chars=r.item_chars, max_tokens=r.max_tokens)
        return await self._agent.recommend(problem, self, exclude, drafted)


class RawRagMemory(SparkMemory):
    """No agent: the problem's statement is searched and the top `retrieval.k` items are pasted as they are."""

    mode = "raw_rag"

    async def advise(self, problem: Problem, exclude: Collection[str]) -> Recommendation:
        query = prompt_query(problem.prompt)
        hits = self.search(query, [problem.library], exclude, int(self.retrieval.k))
        items = self.fetch([h.id for h in hits])
        text = "\n\n".join(f"[{h.id}] {items[h.id].title}\n{items[h.id].content}" for h in hits if h.id in items)
        shown = tuple(RetrievedItem(h.id, h.kind, round(h.score, 6)) for h in hits)
        return Recommendation(text=text, items=shown, trace={"queries": [{"query": query[:200],
                                                                           "hits": [h.id for h in hits]}]},
                              error=None if text else "nothing retrieved")


class PlaybookMemory(SparkMemory):
    """No retrieval: every active insight in context, the best first, up to `playbook_chars`."""

    mode = "playbook"

    async def advise(self, problem: Problem, exclude: Collection[str]) -> Recommendation:
        chosen, size = [], 0
        for item in sorted(self.insight_items.values(), key=lambda i: (-(i.helpful - i.harmful), -i.endorsements, i.id)):
            if set(item.families) & set(exclude):
                continue
            entry = f"[{item.id}] {item.title}\n{item.content}"
            if size + len(entry) > self.playbook_chars:
                break
            chosen.append((item, entry))
            size += len(entry)
        text = "\n\n".join(entry for _, entry in chosen)
        return Recommendation(text=text, items=tuple(RetrievedItem(i.id, "insight", 1.0) for i, _ in chosen),
                              error=None if text else "the playbook is empty")


ORACLE_APIS, ORACLE_SUMMARY_CHARS = 6, 200


class OracleMemory(SparkMemory):
    """A control arm built without a model: the documented APIs the reference solution uses (`docs/apilabels.py`, the
    labels the retrieval benchmark scores against), each with the first sentence of its documentation's summary.
    An upper bound on what documentation advice can do; it leaks by design (built from the reference), so its runs
    are marked `leaky` and never pooled with real conditions. A reference without a documented API gets no advice
    (`recommendation.error`)."""

    mode = "oracle"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.sources or self.learns:
            raise MemoryConfigError("memory=oracle searches nothing and learns nothing; set memory.sources=[] and "
                                    "memory.experience=none")
        self.leaky = True
        self.summaries: dict[str, str] = {}

    async def prepare(self, problems: Sequence[Problem]) -> None:
        await super().prepare(problems)
        from spark_eval.memory.docs.walk import walk_library  # the summaries of the labels the problems need

        wanted: dict[str, set[str]] = {}  # import name -> labels
        for problem in problems:
            for label in self.reference_apis(problem):
                wanted.setdefault(label.split(".")[0], set()).add(label)
        for module, labels in sorted(wanted.items()):
            chunks = walk_library(self.kb_cfg.python, module)
            self.summaries.update({c.qualname: summary_of(c.text) for c in chunks
                                   if c.section == "overview" and c.qualname in labels})

    async def advise(self, problem: Problem, exclude: Collection[str]) -> Recommendation:
        labels = self.reference_apis(problem)[:ORACLE_APIS]
        if not labels:
            return Recommendation(text="", error="oracle: the reference solution uses no documented API")
        lines = [f"- `{label}`" + (f": {self.summaries[label]}" if self.summaries.get(label) else "")
                 for label in labels]
        return Recommendation(text="Use these documented APIs:\n" + "\n".join(lines),
                              trace={"oracle_labels": list(labels)})


def summary_of(overview: str, cap: int = ORACLE_SUMMARY_CHARS) -> str:
    """The first sentence of an overview chunk's summary (the text after its signature line), on one line."""
    _, _, summary = overview.partition("\n\n")
    paragraph = " ".join(summary.split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0]
    return sentence if len(sentence) <= cap else sentence[: cap - 1] + "…"


class PlaceboMemory(AgentMemory):
    """A control arm: the coder is shown the advice written for another problem of the same library, drawn by a
    seeded derangement within each library (another origin family wherever the library has one), so the context
    has the shape and length of Spark's advice and is not about this problem.

    With `placebo.source` (a finished run directory of an advising condition, e.g. Spark's) the other problem's
    advice is taken from its records, so the arm costs coder calls only; without it, the retrieval agent writes the
    other problem's advice over the sources (no learning). The record names the problem the advice was written for
    (`trace.placebo_of`)."""

    mode = "placebo"

    @classmethod
    def planned_calls(cls, settings: Any, problem: Problem) -> list[Call]:
        """The agent's calls for another problem (here counted as this one's), unless a finished run's advice is shown."""
        return [] if (settings.get("placebo") or {}).get("source") else super().planned_calls(settings, problem)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.learns:
            raise MemoryConfigError("memory=placebo shows advice written for other problems and learns nothing; "
                                    "set memory.experience=none")
        settings = self.placebo
        self.source = settings.get("source") or None
        self.placebo_seed = int(settings.get("seed", 0) or 0)
        self.donors: dict[int, int] = {}
        self.borrowed: dict[int, Recommendation] = {}
        self.versions = {**self.versions, "placebo": f"placebo-1:seed{self.placebo_seed}:"
                                                    f"{'run' if self.source else 'agent'}"}

    async def prepare(self, problems: Sequence[Problem]) -> None:
        if self.source and not holds_records(self.source):  # a sweep makes it before this run
            raise MemoryConfigError(f"memory.placebo.source={self.source} holds no records.jsonl; give a finished run "
                                    "directory of an advising condition (e.g. Spark's), or leave it unset to have "
                                    "the agent write the other problem's advice")
        await super().prepare(problems)
        self.donors = derangement(problems, self.placebo_seed)
        if self.source:
            for record in RunFiles(self.source).records:
                if record.epoch == 0 and record.repeat == 0 and record.recommendation is not None:
                    self.borrowed[record.problem_id] = record.recommendation

    async def advise(self, problem: Problem, exclude: Collection[str], drafted: Sequence[Hit] = ()) -> Recommendation:
        """Another problem's advice; this problem's draft (`drafted`) is not shown, as the advice is not about it."""
        donor = self.donors.get(problem.problem_id)
        if donor is None:
            return Recommendation(text="", error=f"placebo: no other problem of {problem.library} in this run")
        if self.source:
            found = self.borrowed.get(donor)
            if found is None or not found.text:
                return Recommendation(text="", trace={"placebo_of": donor},
                                      error=f"placebo: problem {donor} has no advice in {self.source}")
            text, trace = found.text, {"placebo_of": donor, "donor_items": [i.id for i in found.items]}
        else:
            other = self.problems[donor]
            made = await super().advise(other, self._excluded(other))
            if not made.text:
                return Recommendation(text="", trace={"placebo_of": donor},
                                      error=f"placebo: no advice for problem {donor}: {made.error}")
            text, trace = made.text, {"placebo_of": donor, "donor_items": [i.id for i in made.items],
                                      "usage": made.trace.get("usage")}
        return Recommendation(text=text, trace=trace)


def derangement(problems: Sequence[Problem], seed: int, tries: int = 200) -> dict[int, int]:
    """problem id -> the id of another problem of the same library whose advice it is shown: each library's problems
    in a seeded shuffle, each given its successor's (a cycle, so every problem is a donor once and none its own).
    Of `tries` shuffles the first with no problem given one of its own origin family wins, else the one with the
    fewest. A library with one problem gives it no donor."""
    by_library: dict[str, list[Problem]] = {}
    for p in sorted(problems, key=lambda p: p.problem_id):
        by_library.setdefault(p.library, []).append(p)
    donors: dict[int, int] = {}
    for library, pool in sorted(by_library.items()):
        if len(pool) < 2:
            continue
        rng = random.Random(f"placebo:{seed}:{library}")
        best, best_same = None, None
        for _ in range(tries):
            order = pool[:]
            rng.shuffle(order)
            cycle = {p.problem_id: order[(i + 1) % len(order)] for i, p in enumerate(order)}
            same = sum(1 for p in pool if cycle[p.problem_id].origin_family == p.origin_family)
            if best is None or same < best_same:
                best, best_same = cycle, same
            if same == 0:
                break
        donors.update({pid: donor.problem_id for pid, donor in best.items()})
    return donors
