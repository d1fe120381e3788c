"""The benchmark seam: what a benchmark is to the harness, and the selection every benchmark shares.

A benchmark owns its problems (ids, libraries, the families statistics cluster on), the coder's conversation,
and the turning of a model's answer into the program its tests run. `benchmark=<name>` picks one in Hydra (its
config sits at `dataset`, so `dataset.ids`, `dataset.limit`, `dataset.libraries` work for every benchmark); the
runner, re-judging, the report and the memories ask it and never a particular benchmark's module.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import asdict
from typing import Any, Iterable, Protocol, Sequence

from spark_eval.errors import UserError
from spark_eval.records import Recommendation
from spark_eval.types import LIBRARY_MODULES, Message, Problem

ADVICE_TEMPLATE = (
    "\n\nAdvice from a shared memory of documentation and past experience (use it if it helps):\n"
    "<advice>\n{recommendation}\n</advice>"
)
"""How a memory's recommendation is shown to the coder, on every benchmark (part of each coder version)."""


class DatasetError(UserError, ValueError):
    """The dataset or the selection is unusable; the message names the fix."""


class Benchmark(Protocol):
    name: str
    libraries: tuple[str, ...]
    """The libraries its problems use (keys of LIBRARY_MODULES), in the order subsets are drawn."""
    perturbations: tuple[str, ...]
    """The values of `Problem.perturbation_type` it has (`Origin` alone when it has no perturbations)."""
    stop: tuple[str, ...]
    """Stop sequences for the coder: where its prompts expect an answer to end."""
    prompts: tuple[str, ...]
    """The fixed texts of its coder conversation (with ADVICE_TEMPLATE): what a learned insight must not echo."""

    def problems(self) -> list[Problem]:
        """Every problem, unfiltered, in id order."""
        ...

    def select(self) -> list[Problem]:
        """The problems the configured filters choose (`dataset.ids`, `libraries`, `perturbations`, `limit`)."""
        ...

    def data_hash(self) -> str:
        """Content hash of every problem: resume and re-judging refuse another copy."""
        ...

    def coder_messages(self, problem: Problem, recommendation: Recommendation | None) -> list[Message]:
        """The conversation that asks a chat model for an answer."""
        ...

    def program(self, problem: Problem, answer: str) -> tuple[str, str]:
        """(code, program): the code cut out of a model's raw answer, and the program that tests it."""
        ...

    def requires(self, problem: Problem) -> tuple[str, ...]:
        """Modules the program needs (a problem whose module is missing is `skipped`)."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of what changes results (post-processing, program, coder conversation)."""
        ...


class LoadedBenchmark:
    """What every benchmark read from files shares: its problems read once (`read`), the configured selection,
    the content hash, the modules a program needs, and its `versions` (a class attribute)."""

    libraries: tuple[str, ...] = ()
    perturbations: tuple[str, ...] = ("Origin",)
    versions_: dict[str, str] = {}

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self._problems: list[Problem] | None = None
        self._hash: str | None = None

    def read(self) -> list[Problem]:
        """Every problem from the configured source, in id order."""
        raise NotImplementedError

    def problems(self) -> list[Problem]:
        if self._problems is None:
            self._problems = self.read()
        return self._problems

    def select(self) -> list[Problem]:
        return select_problems(self.problems(), self.cfg, self.libraries, self.perturbations)

    def data_hash(self) -> str:
        if self._hash is None:  # resume, the manifest and the report each ask; the problems do not change
            self._hash = problems_hash(self.problems())
        return self._hash

    def requires(self, problem: Problem) -> tuple[str, ...]:
        return (LIBRARY_MODULES[problem.library],)

    def versions(self) -> dict[str, str]:
        return dict(self.versions_)


def with_advice(prompt: str, recommendation: Recommendation | None) -> str:
    """The prompt, plus the recommendation when a memory gives one."""
    if recommendation is not None and recommendation.text:
        return prompt + ADVICE_TEMPLATE.format(recommendation=recommendation.text)
    return prompt


def problems_hash(problems: Iterable[Problem]) -> str:
    """sha256 over the problems' canonical JSON (the task id, a label, left out): the same for every copy of the
    same problems, whatever file or Hub revision they came from."""
    h = hashlib.sha256()
    for p in sorted(problems, key=lambda p: p.problem_id):
        fields = {k: v for k, v in asdict(p).items() if k != "task_id"}
        h.update(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def select_problems(problems: list[Problem], cfg: Any, libraries: Sequence[str], perturbations: Sequence[str]
                    ) -> list[Problem]:
    """Apply the library, perturbation, id and stratified-subset filters of `cfg` (the `dataset` node)."""
    _check_names(cfg.libraries, libraries, "dataset.libraries")
    _check_names(cfg.perturbations, perturbations, "dataset.perturbations")
    by_id = {p.problem_id: p for p in problems}
    unknown = [i for i in cfg.ids if i not in by_id]
    if unknown:
        raise DatasetError(f"dataset.ids has unknown problem ids {unknown}; ids run 0..{len(problems) - 1}")
    chosen = [by_id[i] for i in cfg.ids] if cfg.ids else list(problems)
    if cfg.libraries:
        chosen = [p for p in chosen if p.library in set(cfg.libraries)]
    if cfg.perturbations:
        chosen = [p for p in chosen if p.perturbation_type in set(cfg.perturbations)]
    if cfg.limit is not None:
        chosen = stratified_subset(chosen, cfg.limit, cfg.subset_seed, libraries)
    if not chosen:
        raise DatasetError("the dataset filters select no problem; loosen dataset.libraries/perturbations/ids")
    return sorted(chosen, key=lambda p: p.problem_id)


def _check_names(given: Iterable[str], known: Sequence[str], key: str) -> None:
    bad = [g for g in given if g not in known]
    if bad:
        raise DatasetError(f"{key} has unknown names {bad}; choose from {list(known)}")


def stratified_subset(problems: list[Problem], n: int, seed: int, libraries: Sequence[str]) -> list[Problem]:
    """A seeded subset of `n` problems, spread over libraries as evenly as their sizes allow.

    Round-robin over libraries (in the benchmark's order), each library's problems in a seeded shuffle,
    so every library gets floor(n/L) or one more while it has problems left.
    """
    if n < 1:
        raise DatasetError(f"dataset.limit={n} must be at least 1")
    rng = random.Random(seed)
    pools: dict[str, list[Problem]] = defaultdict(list)
    for p in sorted(problems, key=lambda p: p.problem_id):
        pools[p.library].append(p)
    for pool in pools.values():
        rng.shuffle(pool)
    order = [lib for lib in libraries if lib in pools] + sorted(set(pools) - set(libraries))
    chosen: list[Problem] = []
    while len(chosen) < n and any(pools.values()):
        for lib in order:
            if pools[lib] and len(chosen) < n:
                chosen.append(pools[lib].pop())
    return chosen
