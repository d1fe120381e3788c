"""Synthetic run directories for the analysis layer: records shaped like the runner's, written without a model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spark_eval.records import BAND_SCORES, BANDS
from spark_eval.records import record_key

LIBRARIES = ("Pandas", "Numpy", "Matplotlib", "Sklearn", "Scipy", "Pytorch", "Tensorflow")
PERTURBATIONS = ("Origin", "Surface", "Semantic", "Difficult-Rewrite")
QUALITY_JUDGE, HELPFULNESS_JUDGE = "quality/fake-judge", "helpfulness/fake-judge"


def record(problem_id: int, model: str, memory: str, *, passed: bool = True, scores: Sequence[float] = (),
           band: str | None = None, library: str = "Pandas", perturbation: str = "Origin", origin: int | None = None,
           epoch: int = 0, repeat: int = 0, seed: int = 0, tokens: int = 100, error: str | None = None,
           advice_error: str | None = None, api_labels: Sequence[str] | None = None,
           api_hits: Sequence[str] | None = None) -> dict[str, Any]:
    """One record; `scores` are quality verdicts (one per judge repeat), `band` a helpfulness verdict.

    `error` makes it a record that ended in an error before anything was answered (no completion, code,
    execution or verdicts); `advice_error` one whose memory gave no advice and said why; `api_labels` and
    `api_hits` are the advice's check against the reference's APIs (`recommendation.api_labels`/`api_hits`).
    """
    if error is not None:
        return {**record(problem_id, model, memory, library=library, perturbation=perturbation, origin=origin,
                         epoch=epoch, repeat=repeat, seed=seed), "completion": None, "code": None, "exec": None,
                "recommendation": None, "judgments": [], "error": error}
    judgments = [_judgment(QUALITY_JUDGE, "quality", float(s), None, k) for k, s in enumerate(scores)]
    if band is not None:
        judgments.append(_judgment(HELPFULNESS_JUDGE, "helpfulness", float(BAND_SCORES[band]), band, 0))
    return {
        "key": record_key(problem_id, epoch, repeat), "problem_id": problem_id, "library": library,
        "perturbation_type": perturbation, "origin_family": [library, problem_id if origin is None else origin],
        "model": model, "memory": memory, "seed": seed, "epoch": epoch, "repeat": repeat,
        "completion": {"text": "result = 1", "input_tokens": tokens, "output_tokens": tokens // 4, "latency_s": 0.5,
                       "cost_usd": tokens * 1e-6, "cached": False, "attempts": 1, "finish_reason": None,
                       "request_id": None},
        "code": f"result = {problem_id}  # <b>&", "exec": {"status": "passed" if passed else "failed",
                                                          "error_type": None if passed else "AssertionError",
                                                          "stderr_tail": "" if passed else "AssertionError <x>",
                                                          "duration_s": 0.1},
        "recommendation": None if memory == "none" else _advice(problem_id, advice_error, api_labels, api_hits),
        "judgments": judgments, "memory_hash": "0" * 64, "versions": {"quality": "quality-1"}, "error": None,
    }


def write_run(path: Path, records: Sequence[dict[str, Any]], experiment: str = "synthetic", leaky: bool = False,
              health: Sequence[dict[str, Any]] = (), ledger: dict[str, Any] | None = None,
              identity: dict[str, Any] | None = None, insights: Sequence[dict[str, Any]] = ()) -> Path:
    """A run directory with records.jsonl, a manifest (`identity` adds to its identity) and, optionally,
    memory/health.jsonl and a memory snapshot (memory/final/insights.jsonl)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = {"status": "finished", "identity": {"experiment_name": experiment, **(identity or {})},
                "dataset_hash": "synthetic", "leaky": leaky, "ledger": ledger or {}}
    if insights:
        (path / "memory" / "final").mkdir(parents=True, exist_ok=True)
        (path / "memory" / "final" / "insights.jsonl").write_text("".join(json.dumps(i) + "\n" for i in insights))
    (path / "manifest.json").write_text(json.dumps(manifest))
    if health:
        (path / "memory").mkdir(exist_ok=True)
        (path / "memory" / "health.jsonl").write_text("".join(json.dumps(h) + "\n" for h in health))
    return path


def synthetic_experiment(root: Path, models: Sequence[str], n: int, seed: int = 0, epochs: int = 1,
                         memories: Sequence[str] = ("none", "spark"), reference: bool = True,
                         experiment: str = "synthetic", texts: bool = False) -> list[Path]:
    """Runs of every model x memory on the same `n` problems (plus the reference solutions), where the memory
    lifts quality and pass rate a little; random but fixed by `seed`; `experiment` is their experiment_name.
    With `texts`, every record has text about as long as a real one's (see `with_texts`); the numbers stay."""
    rng = np.random.default_rng(seed)
    words = np.random.default_rng([seed, 1])  # a stream of its own: the numbers do not depend on `texts`
    problems = [(pid, LIBRARIES[(pid // 3) % len(LIBRARIES)], PERTURBATIONS[pid % 4], pid // 3)
                for pid in range(n)]
    conditions = [(m, mem) for m in models for mem in memories] + ([("reference", "none")] if reference else [])
    paths = []
    for i, (model, memory) in enumerate(conditions):
        skill = 0.5 + 0.1 * (i // len(memories)) + (0.15 if memory != "none" else 0.0)
        records = []
        for epoch in range(epochs):
            for pid, library, perturbation, origin in problems:
                passed = bool(rng.random() < skill)
                score = int(np.clip(np.round(rng.normal((4.2 if passed else 2.8) + skill - 0.5, 0.7)), 1, 5))
                band = BANDS[int(np.clip(rng.poisson(0.6), 0, 4))] if memory != "none" else None
                made = record(pid, model, memory, passed=passed, scores=[score], band=band, library=library,
                              perturbation=perturbation, origin=origin, epoch=epoch)
                records.append(with_texts(made, words, models) if texts else made)
        health = [{"epoch": e, "round": r, "records_seen": 16, "insights": 3 * (e * 10 + r + 1)}
                  for e in range(epochs) for r in range(-(-n // 16))] if memory != "none" else []
        ledger = {"coder": {"calls": n, "input_tokens": 100 * n, "output_tokens": 25 * n, "cost_usd": 1e-4 * n},
                  "judge": {"calls": n, "input_tokens": 300 * n, "output_tokens": 50 * n, "cost_usd": 3e-4 * n}}
        if memory != "none":
            ledger["agent"] = {"calls": n, "input_tokens": 500 * n, "output_tokens": 80 * n, "cost_usd": 5e-4 * n}
        paths.append(write_run(root / f"{model}__{memory}__s0", records, experiment=experiment, health=health,
                               ledger=ledger))
    return paths


WORDS = ("frame", "index", "column", "merge", "groupby", "axis", "dtype", "reshape", "pivot", "array", "tensor",
         "fit", "transform", "plot", "sparse", "mean", "values", "shape", "apply", "sort", "mask", "label", "series",
         "matrix", "vector", "model", "layer", "batch", "scale", "solve")


def synthetic_prompts(n: int, words: int = 180, seed: int = 0) -> dict[int, str]:
    """A prompt per problem of `synthetic_experiment` (DS-1000's are about this long); problem `k`'s names
    `problem-k`, so a search can find it alone."""
    rng = np.random.default_rng([seed, 2])
    return {pid: f"Problem: problem-{pid}\n{_sentence(rng, words)}\nA:\n<code>\nresult = ... # put solution here\n"
            for pid in range(n)}


def with_texts(made: dict[str, Any], rng: np.random.Generator, contributors: Sequence[str]) -> dict[str, Any]:
    """`made` with code, output, rationales and advice about as long as a real record's: the advice shows 8
    items (5 documentation chunks, 3 insights naming contributors; one insight in ten poisoned), 2 or 3 cited."""
    if made["error"] is not None:
        return made
    pid, library = made["problem_id"], made["library"].lower()
    code = "\n".join(f"{_sentence(rng, 3).replace(' ', '_')} = {library}.{_sentence(rng, 1)}("
                     f"{_sentence(rng, 2).replace(' ', ', ')})" for _ in range(12))
    out = {**made, "code": f"# problem-{pid}\n{code}"}
    if made["exec"]["status"] != "passed":
        out["exec"] = {**made["exec"], "stderr_tail": "Traceback (most recent call last):\n" + _sentence(rng, 40)}
    out["judgments"] = [{**j, "rationale": _sentence(rng, 40)} for j in made["judgments"]]
    if made["recommendation"] is not None and made["recommendation"]["error"] is None:
        cited = set(rng.choice(8, size=int(rng.integers(2, 4)), replace=False).tolist())
        docs = [{"id": f"doc:{library}:{library}.{_sentence(rng, 2).replace(' ', '.')}#overview", "kind": "doc"}
                for _ in range(5)]
        insights = [{"id": f"ins:{int(rng.integers(0, 4000)):04d}", "kind": "insight",
                     "contributors": sorted(set(rng.choice(list(contributors), size=2).tolist())),
                     **({"poison": True} if rng.random() < 0.1 else {})} for _ in range(3)]
        items = [{**item, "score": round(float(rng.random()) / 30, 6), "cited": k in cited, "leak": False,
                  "contributors": item.get("contributors", [])} for k, item in enumerate(docs + insights)]
        out["recommendation"] = {**made["recommendation"], "text": _sentence(rng, 120), "items": items}
    return out


def _sentence(rng: np.random.Generator, words: int) -> str:
    return " ".join(WORDS[k] for k in rng.integers(0, len(WORDS), size=words))


def _advice(problem_id: int, error: str | None, api_labels: Sequence[str] | None = None,
            api_hits: Sequence[str] | None = None) -> dict[str, Any]:
    """The advice of a record (`error`: none given, and why); `api_labels`/`api_hits` are set only when given."""
    checked = {key: list(value) for key, value in (("api_labels", api_labels), ("api_hits", api_hits))
               if value is not None}
    if error is not None:
        return {"text": "", "plan": {}, "items": [], "leak_flag": False, "error": error, **checked}
    plan = {"intent": f"reshape <{problem_id}>", "library": "Pandas", "queries": ["DataFrame.pivot", "melt"], "avoid": "loops"}
    items = [{"id": "doc:pandas:pandas.DataFrame.pivot#overview", "kind": "doc", "score": 0.03, "cited": True},
             {"id": "ins:0123", "kind": "insight", "score": 0.02, "cited": False, "leak": True}]
    return {"text": f"Use pandas <{problem_id}>", "plan": plan, "items": items, "leak_flag": False, "error": None,
            **checked}


def _judgment(judge: str, kind: str, score: float, band: str | None, repeat: int) -> dict[str, Any]:
    return {"judge": judge, "kind": kind, "score": score, "band": band, "criteria": {},
            "rationale": "fine <script>alert(1)</script>", "raw": "{}", "parse_error": None, "version": f"{kind}-1",
            "repeat": repeat, "usage": {"calls": 1, "cached": 0, "input_tokens": 300, "output_tokens": 50,
                                        "cost_usd": 3e-4}}
