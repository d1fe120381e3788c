"""Load DS-1000 into frozen Problem records, from the offline gzip JSONL file or the Hub."""
from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from spark_eval.errors import UserError
from spark_eval.records import read_jsonl
from spark_eval.types import Problem

log = logging.getLogger(__name__)

LIBRARIES = ("Pandas", "Numpy", "Matplotlib", "Tensorflow", "Scipy", "Sklearn", "Pytorch")
PERTURBATIONS = ("Origin", "Surface", "Semantic", "Difficult-Rewrite")
_REQUIRED = ("prompt", "reference_code", "metadata", "code_context")
_REQUIRED_META = ("problem_id", "library", "test_case_cnt", "perturbation_type", "perturbation_origin_id")


class DatasetError(UserError, ValueError):
    """The dataset or the selection is unusable; the message names the fix."""


def load_problems(cfg: Any) -> list[Problem]:
    """All problems of `cfg` (the `dataset` config group) after its filters, in problem-id order."""
    return select_problems(read_dataset(cfg), cfg)


def read_dataset(cfg: Any) -> list[Problem]:
    """Every problem of the configured source, unfiltered."""
    if cfg.source == "file":
        rows = _read_jsonl_gz(Path(cfg.path), cfg.get("sha256"))
    elif cfg.source == "hub":
        rows = _read_hub(cfg.hub_id, cfg.hub_revision)
    else:
        raise DatasetError(f"dataset.source={cfg.source!r} is unknown; use 'file' or 'hub'")
    return [_to_problem(row, where) for where, row in rows]


def _read_jsonl_gz(path: Path, sha256: str | None) -> list[tuple[str, dict]]:
    if not path.is_file():
        raise DatasetError(f"DS-1000 file not found: {path}; set dataset.path=<ds1000.jsonl.gz>")
    if sha256:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        if found != sha256:
            raise DatasetError(
                f"{path} has sha256 {found[:16]}..., not the pinned copy's {sha256[:16]}...; restore it "
                "(git checkout data/), or set dataset.sha256=null to grade another copy on purpose"
            )
    return [(f"{path}:{lineno}", row) for lineno, row in read_jsonl(path, DatasetError)]


def _read_hub(hub_id: str, revision: str) -> list[tuple[str, dict]]:
    try:
        import datasets
    except ImportError:
        raise DatasetError("dataset.source=hub needs the `datasets` package: pip install datasets") from None
    ds = datasets.load_dataset(hub_id, split="test", revision=revision)
    return [(f"{hub_id}@{revision[:8]} row {i}", dict(row)) for i, row in enumerate(ds)]


def _to_problem(row: Any, where: str) -> Problem:
    if not isinstance(row, dict) or any(k not in row for k in _REQUIRED):
        raise DatasetError(f"{where}: a DS-1000 record needs the keys {', '.join(_REQUIRED)}")
    meta = row["metadata"]
    if not isinstance(meta, dict) or any(k not in meta for k in _REQUIRED_META):
        raise DatasetError(f"{where}: metadata needs the keys {', '.join(_REQUIRED_META)}")
    return Problem(
        problem_id=int(meta["problem_id"]),
        library=str(meta["library"]),
        perturbation_type=str(meta["perturbation_type"]),
        origin_family=(str(meta["library"]), int(meta["perturbation_origin_id"])),
        prompt=row["prompt"],
        reference_code=row["reference_code"],
        code_context=row["code_context"],
        test_case_cnt=int(meta["test_case_cnt"]),
    )


def select_problems(problems: list[Problem], cfg: Any) -> list[Problem]:
    """Apply the library, perturbation, id and stratified-subset filters of `cfg`."""
    _check_names(cfg.libraries, LIBRARIES, "dataset.libraries")
    _check_names(cfg.perturbations, PERTURBATIONS, "dataset.perturbations")
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
        chosen = stratified_subset(chosen, cfg.limit, cfg.subset_seed)
    if not chosen:
        raise DatasetError("the dataset filters select no problem; loosen dataset.libraries/perturbations/ids")
    return sorted(chosen, key=lambda p: p.problem_id)


def _check_names(given: Iterable[str], known: tuple[str, ...], key: str) -> None:
    bad = [g for g in given if g not in known]
    if bad:
        raise DatasetError(f"{key} has unknown names {bad}; choose from {list(known)}")


def stratified_subset(problems: list[Problem], n: int, seed: int) -> list[Problem]:
    """A seeded subset of `n` problems, spread over libraries as evenly as their sizes allow.

    Round-robin over libraries (in LIBRARIES order), each library's problems in a seeded shuffle,
    so every library gets floor(n/7) or one more while it has problems left.
    """
    if n < 1:
        raise DatasetError(f"dataset.limit={n} must be at least 1")
    rng = random.Random(seed)
    pools: dict[str, list[Problem]] = defaultdict(list)
    for p in sorted(problems, key=lambda p: p.problem_id):
        pools[p.library].append(p)
    for pool in pools.values():
        rng.shuffle(pool)
    order = [lib for lib in LIBRARIES if lib in pools] + sorted(set(pools) - set(LIBRARIES))
    chosen: list[Problem] = []
    while len(chosen) < n and any(pools.values()):
        for lib in order:
            if pools[lib] and len(chosen) < n:
                chosen.append(pools[lib].pop())
    return chosen


def dataset_hash(problems: list[Problem]) -> str:
    """sha256 over the problems' canonical JSON: the same for the file and the Hub copy."""
    h = hashlib.sha256()
    for p in sorted(problems, key=lambda p: p.problem_id):
        h.update(json.dumps(p.__dict__, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()
