"""Continuous learning's second half: curate the store with a round's candidates and outcomes.

Curation: near-duplicates (cosine >= threshold) are merged, keeping every source's provenance and counting
endorsements; helpful/harmful counters follow the outcomes of records that used an insight; an insight is
retired when the records that used it failed more often than the stream's base rate predicts, by a margin of
failures (`harmful - (helpful + harmful) * base_fail_rate >= retire_margin`, the base rate counted over every graded
record the store has learned from, so a weak coder's usual failures do not retire every insight it used). With
`harm="paired"` the counters move against a counterfactual instead: the same coder's outcome on the same problem
without memory (`loop.paired_outcomes`), so that a use which turned a pass into a failure is harm and one which
turned a failure into a pass is help, and an insight is retired when `harmful - helpful >= retire_margin`. The total
is capped. Every operation is logged.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from spark_eval.memory.embed import Embedder
from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learning.learner import Candidate, insight_id, insight_text, searched_text
from spark_eval.memory.learning.screen import InsightScreen, SourceFacts
from spark_eval.memory.store.base import CuratedStore, Item


def base_fail_rate(graded: Sequence[int]) -> float:
    """The share of graded records that failed; 0.5 (no lean) before any was counted."""
    passed, failed = graded
    return failed / (passed + failed) if passed + failed else 0.5


def excess_harm(item: Item, fail_rate: float) -> float:
    """Failures of the records that used `item` beyond those the base fail rate predicts for as many records."""
    return item.harmful - (item.helpful + item.harmful) * fail_rate


@dataclass
class CurationPolicy:
    """Thresholds of curation."""

    duplicate_threshold: float = 0.9
    retire_margin: float = 3.0
    max_insights: int = 500
    harm: str = "base_rate"
    """`base_rate` or `paired` (see the module's docstring)."""
    poison_past_screen: bool = False
    """The poisoning arm's lessons skip the screen (`memory.poison.past_screen`): an adversary who writes them to
    pass it, so that what curation's outcomes alone catch is measured."""


BASE_OUTCOMES = "graded_outcomes"  # store meta: [passed, failed] over every graded record learned from


class Curator:
    """Applies candidates and outcomes to the store, logging every operation."""

    def __init__(self, store: CuratedStore, embedder: Embedder, policy: CurationPolicy, guard: LeakGuard,
                 screen: InsightScreen | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.policy = policy
        self.guard = guard
        self.screen = screen

    def apply(self, candidates: Sequence[Candidate], references: dict[int, str], outcomes: dict[str, tuple[int, int]],
              where: dict[str, int], check_leaks: bool = True, facts: dict[int, SourceFacts] | None = None,
              graded: tuple[int, int] = (0, 0)) -> Counter:
        """One curation step inside the caller's transaction: counters, then candidates, retirements, cap.

        `references` maps problem ids to reference code (candidates that restate one are rejected unless
        `check_leaks` is off); `facts` maps them to what the screen checks a candidate against (the problem's text
        and library, the APIs its attempt met; when the curator has a screen), and a candidate that passes keeps
        as sources only the attempts of its own library; `outcomes` maps insight ids to (helpful, harmful) increments; `graded` is the (passed, failed)
        count of every graded record of the step, with or without insights (the base rate); `where` is
        `{epoch, round}` for the log. Returns the count of each operation.
        """
        ops: list[dict[str, Any]] = []
        self._count_outcomes(outcomes, where, ops)
        base = self.store.get_meta(BASE_OUTCOMES, [0, 0])
        if any(graded):
            base = [base[0] + graded[0], base[1] + graded[1]]
            self.store.set_meta(BASE_OUTCOMES, base)
        active = self.store.items(kind="insight")
        vectors = self._vectors(active)
        retired = self.store.items(kind="insight", status="retired")
        retired_vectors = self._vectors(retired)
        for candidate in candidates:
            filed = candidate.library
            known = [facts[s["problem_id"]] for s in candidate.sources if s.get("problem_id") in (facts or {})]
            candidate = self._refiled(candidate, known)
            echoed = self.screen is not None and self.screen.echoed_when(candidate.title, candidate.content,
                                                                         candidate.applies_when)
            if echoed:  # it says nothing of when the lesson applies: the lesson is kept without it
                candidate = replace(candidate, applies_when="")
            past = self.policy.poison_past_screen and bool(_poison_mark(candidate))
            screened = None if past else self._screened(candidate, known)
            if screened:
                ops.append({"op": "REJECT", "item_id": insight_id(candidate.title, candidate.content), **where,
                            "detail": {"reason": f"screen: {screened}", "title": candidate.title,
                                       "content": candidate.content, "library": candidate.library,
                                       "api": list(candidate.apis), "applies_when": candidate.applies_when,
                                       **_poison_mark(candidate)}})
                continue
            candidate = own_sources(candidate, facts or {})
            leak = check_leaks and self._restates_a_solution(candidate, references)
            if leak:
                ops.append({"op": "REJECT", "item_id": insight_id(candidate.title, candidate.content), **where,
                            "detail": {"reason": "restates a reference solution", "problem_id": leak}})
                continue
            text = searched_text(candidate.title, candidate.content, candidate.applies_when)
            vector = self.embedder.embed([text])[0]
            twin, similarity = _nearest(vector, vectors)
            ghost = self._retired_match(candidate, vector, retired, retired_vectors, similarity if len(vectors) else 0.0)
            if ghost is not None:  # a retired insight stays retired (counters kept): proposing it again does not revive it
                old, close = ghost
                ops.append({"op": "REJECT", "item_id": old.id, **where,
                            "detail": {"reason": "proposed again, but retired", "title": candidate.title,
                                       "similarity": round(close, 4), "helpful": old.helpful,
                                       "harmful": old.harmful}})
                continue
            if twin is not None and similarity >= self.policy.duplicate_threshold:
                merged = _merge(active[twin], candidate)
                active[twin] = merged
                self.store.put_items([merged])
                ops.append({"op": "MERGE", "item_id": merged.id, **where,
                            "detail": {"title": candidate.title, "similarity": round(similarity, 4),
                                       "endorsements": merged.endorsements}})
                continue
            item = _new_item(candidate, where)
            if any(i.id == item.id for i in active):
                continue  # the very same text again
            self.store.put_items([item])
            active.append(item)
            vectors = np.vstack([vectors, vector[None, :]]) if len(vectors) else vector[None, :]
            ops.append({"op": "ADD", "item_id": item.id, **where,
                        "detail": {"title": item.title, **({"filed_under": filed} if filed != item.library else {}),
                                   **({"applies_when_dropped": True} if echoed else {})}})
        self._retire(where, ops, base_fail_rate(base))
        self.store.log_ops(ops)
        return Counter(op["op"] for op in ops)

    def _retired_match(self, candidate: Candidate, vector: np.ndarray, retired: list[Item], retired_vectors: np.ndarray,
                       active_similarity: float) -> tuple[Item, float] | None:
        """The retired insight `candidate` proposes again: the same id, or a near-duplicate closer than any active
        insight (a candidate nearer an active one merges into that one instead)."""
        same = insight_id(candidate.title, candidate.content)
        for item in retired:
            if item.id == same:
                return item, 1.0
        ghost, similarity = _nearest(vector, retired_vectors)
        if ghost is not None and similarity >= self.policy.duplicate_threshold and similarity > active_similarity:
            return retired[ghost], similarity
        return None

    def _count_outcomes(self, outcomes: dict[str, tuple[int, int]], where: dict[str, int], ops: list) -> None:
        known = {i.id for i in self.store.get_items(sorted(outcomes))}
        deltas = {k: v for k, v in sorted(outcomes.items()) if k in known}
        if deltas:
            self.store.add_counters(deltas)
        ops += [{"op": "UPDATE", "item_id": k, **where, "detail": {"helpful": h, "harmful": b}}
                for k, (h, b) in deltas.items()]

    def _retire(self, where: dict[str, int], ops: list, fail_rate: float) -> None:
        active = self.store.items(kind="insight")
        harmful = [i for i in active if self.harm_of(i, fail_rate) >= self.policy.retire_margin]
        keep = [i for i in active if i not in harmful]
        over = max(0, len(keep) - self.policy.max_insights)
        weakest = sorted(keep, key=lambda i: (i.helpful - i.harmful, i.endorsements, i.id))[:over]
        for items, reason in ((harmful, "harm outweighs help"), (weakest, "over the size cap")):
            if items:
                self.store.set_status([i.id for i in items], "retired")
                ops += [{"op": "RETIRE", "item_id": i.id, **where,
                         "detail": {"reason": reason, "helpful": i.helpful, "harmful": i.harmful, "harm": self.policy.harm,
                                    "base_fail_rate": round(fail_rate, 4),
                                    "excess_harm": round(self.harm_of(i, fail_rate), 4)}} for i in items]

    def _refiled(self, candidate: Candidate, known: list[SourceFacts]) -> Candidate:
        """The candidate under the library of its source attempts (what is `known` of them) that its APIs belong to
        (`InsightScreen.library_of`)."""
        if self.screen is None:
            return candidate
        library = self.screen.library_of(candidate.library, candidate.apis, candidate.content, known)
        return candidate if library == candidate.library else replace(candidate, library=library)

    def harm_of(self, item: Item, fail_rate: float) -> float:
        """What retirement weighs against `retire_margin`: failures beyond the base rate's prediction, or (paired)
        the passes its uses turned into failures less the failures they turned into passes."""
        return float(item.harmful - item.helpful) if self.policy.harm == "paired" else excess_harm(item, fail_rate)

    def _screened(self, candidate: Candidate, known: list[SourceFacts]) -> str | None:
        if self.screen is None:
            return None
        text = searched_text(candidate.title, candidate.content, candidate.applies_when)
        return self.screen.reason(candidate.library, candidate.apis, text, [], title=candidate.title,
                                  content=candidate.content, applies_when=candidate.applies_when, sources=known)

    def _restates_a_solution(self, candidate: Candidate, references: dict[int, str]) -> int | None:
        for source in candidate.sources:
            reference = references.get(source["problem_id"], "")
            if self.guard.leaks(candidate.content, reference):
                return source["problem_id"]
        return None

    def _vectors(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return self.embedder.embed([insight_text(i) for i in items])


def own_sources(candidate: Candidate, facts: dict[int, SourceFacts]) -> Candidate:
    """The candidate with the sources of its own library only (a learner call sees attempts of several problems; a
    lesson about one library is learned from that library's), when their facts are known and any is of it."""
    mine = tuple(s for s in candidate.sources
                 if s.get("problem_id") not in facts or facts[s["problem_id"]].library == candidate.library)
    return replace(candidate, sources=mine) if mine and len(mine) < len(candidate.sources) else candidate


def _poison_mark(candidate: Candidate) -> dict[str, Any]:
    """`{"poison": <kind>}` for a candidate the poisoning arm wrote, for the REJECT log; nothing otherwise."""
    kinds = [s.get("poison_kind") or "poison" for s in candidate.sources if isinstance(s, dict) and s.get("poison")]
    return {"poison": kinds[0]} if kinds else {}


def _nearest(vector: np.ndarray, vectors: np.ndarray) -> tuple[int | None, float]:
    if not len(vectors):
        return None, 0.0
    similarities = vectors @ vector
    best = int(np.argmax(similarities))
    return best, float(similarities[best])


def _new_item(candidate: Candidate, where: dict[str, int]) -> Item:
    return Item(
        id=insight_id(candidate.title, candidate.content), kind="insight", library=candidate.library,
        title=candidate.title, content=candidate.content, tags=candidate.tags,
        meta={"applies_when": candidate.applies_when, "origin": candidate.origin},
        provenance=candidate.sources, created_round=where.get("round"),
    )


def _merge(item: Item, candidate: Candidate) -> Item:
    """The kept insight gains the candidate's sources and tags and one endorsement; its text stays."""
    seen = {(s.get("model"), s.get("record_key")) for s in item.provenance}  # two coders may solve one problem
    provenance = item.provenance + tuple(s for s in candidate.sources
                                         if (s.get("model"), s.get("record_key")) not in seen)
    tags = item.tags + tuple(t for t in candidate.tags if t not in item.tags)
    return replace(item, provenance=provenance, tags=tags, endorsements=item.endorsements + 1)