"""Does the helpfulness judge tell a memory's own advice from advice for another problem and from misleading advice?

    python scripts/make_misleading_recommendations.py <spark run dir> --out results/helpfulness/recs.jsonl
    python bench/bench_helpfulness.py results/helpfulness/recs.jsonl --out results/bench/helpfulness.json
    python bench/bench_helpfulness.py results/helpfulness/recs.jsonl --judge local_small   # the 0.5B judge

Judges every recommendation of the file with the helpfulness judge of `judge=<name>` (the response cache makes a
second pass free), then per problem ranks own against misleading and own against other by the judge's verdict:
its score first (the band's, or the expected band score when the judge reads the bands' probabilities), then
the mean of its five criteria when it gives them. Prints the share of problems where own ranks strictly above
each (ties and missing verdicts count against), the band shares of each kind, missing verdicts and seconds
per verdict.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from spark_eval.config import compose_config
from spark_eval.data.ds1000 import read_dataset
from spark_eval.judge.helpfulness import HelpfulnessJudge
from spark_eval.models.pool import ModelPool
from spark_eval.records import BANDS, Recommendation

KINDS = ("own", "other", "misleading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recs", type=Path, help="the JSON lines of scripts/make_misleading_recommendations.py")
    parser.add_argument("--judge", default="local")
    parser.add_argument("--limit", type=int, default=None,
                        help="only N problems of the file, spread over it (every k-th, the file being in id order)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cfg = compose_config(f"judge={args.judge}")
    problems = {p.problem_id: p for p in read_dataset(cfg.dataset)}
    rows = [json.loads(line) for line in args.recs.read_text().splitlines() if line.strip()]
    if args.limit is not None:
        ids = list(dict.fromkeys(r["problem_id"] for r in rows))
        keep = ids[:: max(1, len(ids) // args.limit)][: args.limit]
        rows = [r for r in rows if r["problem_id"] in keep]
    pool = ModelPool()
    judge = next(j for j in _panel(cfg, pool) if isinstance(j, HelpfulnessJudge))
    verdicts = asyncio.run(_judge_all(judge, problems, rows))
    pool.close()
    result = {"judge": judge.name, "version": judge.version, **summarise(rows, verdicts), "rows": verdicts}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _panel(cfg, pool):
    from spark_eval.judge.panel import build_panel

    return build_panel(cfg.judge, pool)


async def _judge_all(judge: HelpfulnessJudge, problems: dict, rows: list[dict]) -> list[dict]:
    out = []
    print(f"{'id':>4} {'kind':<10} {'band':<17} {'score':>8} {'s':>5}  check")
    for row in rows:
        start = time.monotonic()
        verdict = await judge.grade(problems[row["problem_id"]], "", Recommendation(text=row["text"]))
        criteria = [c["score"] for c in verdict.criteria.values() if isinstance(c, dict) and "score" in c]
        out.append({"problem_id": row["problem_id"], "kind": row["kind"], "band": verdict.band,
                    "score": verdict.score, "criteria_mean": sum(criteria) / len(criteria) if criteria else None,
                    "check": verdict.rationale, "error": verdict.parse_error,
                    "seconds": round(time.monotonic() - start, 1),
                    "output_tokens": verdict.usage.get("output_tokens", 0)})
        r = out[-1]
        print(f"{r['problem_id']:>4} {r['kind']:<10} {r['band'] or '-':<17} {r['score'] or 0:>8.2f} "
              f"{r['seconds']:>5}  {(r['check'] or r['error'] or '')[:90]}", flush=True)
    return out


def summarise(rows: list[dict], verdicts: list[dict]) -> dict:
    by_problem: dict[int, dict[str, dict]] = {}
    for verdict in verdicts:
        by_problem.setdefault(verdict["problem_id"], {})[verdict["kind"]] = verdict

    def key(v: dict | None) -> tuple[float, float] | None:
        return None if v is None or v["score"] is None else (v["score"], v["criteria_mean"] or 0.0)

    def above(kind: str) -> float | None:
        pairs = [(key(k.get("own")), key(k.get(kind))) for k in by_problem.values() if "own" in k and kind in k]
        wins = sum(1 for own, them in pairs if own is not None and (them is None or own > them))
        return round(wins / len(pairs), 3) if pairs else None

    shares = {}
    for kind in KINDS:
        bands = Counter(v["band"] or "missing" for v in verdicts if v["kind"] == kind)
        total = sum(bands.values())
        shares[kind] = {band: round(bands[band] / total, 3) for band in (*BANDS, "missing") if total}
    judged = [v for v in verdicts]
    return {
        "problems": len(by_problem),
        "own_above_misleading": above("misleading"),
        "own_above_other": above("other"),
        "band_shares": shares,
        "missing": round(sum(1 for v in judged if v["score"] is None) / len(judged), 3) if judged else None,
        "seconds_per_verdict": round(sum(v["seconds"] for v in judged) / len(judged), 1) if judged else None,
        "cut_off": sum(1 for v in judged if v["error"] and "cut off" in v["error"]),
    }


if __name__ == "__main__":
    main()
