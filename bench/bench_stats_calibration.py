"""Calibration of the paired statistics by A/A simulation on real records: the sign-flip test's false-positive
rate and the coverage of the clustered 95% CI, for `pass` and `quality`, at n = 20, 100 and 1000 problems.

    PYTHONPATH=. nice -n 19 python bench/bench_stats_calibration.py --runs 'results/local_study/*'
    PYTHONPATH=. nice -n 19 python bench/bench_stats_calibration.py --runs '<glob>' '<glob>' --reps 500 --sizes 20,100
    PYTHONPATH=. nice -n 19 python bench/bench_stats_calibration.py --runs '<glob>' --families records  # not DS-1000
    PYTHONPATH=. python bench/bench_stats_calibration.py dataset.path=<ds1000.jsonl.gz> --runs '<glob>'  # overrides

What a simulation is built from. The runs' records (every model but the reference solutions; records that ended
in an error left out) give each problem an outcome distribution: for `pass`, the shares of its records that
passed and failed; for `quality`, the shares of each quality score a record got (the mean of the judge's repeats,
as stats.units takes it), when the runs hold quality verdicts (`--quality-judge` picks one of several). Pooled
over every run and condition, with a small pseudo-count `--prior` m (in records) towards the problem's origin
family, and the family's towards all records, so a problem seen once is not a certainty:

    w_problem = (counts_problem + m * w_family) / (records_problem + m)
    w_family  = (counts_family  + m * w_all)    / (records_family  + m)

The family structure is DS-1000's (`spark_eval.data` reads the benchmark): every origin family that holds at least
one problem with records, with all its problems; a problem of such a family without records of its own takes its
family's distribution (`--families records`: only the problems with records, grouped by their records' family,
for runs that are not of the configured benchmark).

One replication at n problems draws whole families with replacement (a family drawn twice is two independent
families) until n problems (the last family drawn cut to reach exactly n), then draws each problem's outcome twice
and independently from its distribution, once per arm (`--records` records per problem and arm, averaged; by
default the median a run holds per problem): the two arms are the same, so the null is true and the true
difference is 0. The difference (arm A - arm B) per problem goes through the production functions as
stats/compare.py calls them: `paired.sign_flip_p(diffs, families, seed)` (a false positive: p < 0.05) and
`bootstrap.cluster_ci(diffs, families, --bootstrap, seed)` (covers: low <= 0 <= high), with seed = the
replication's number (the report passes report.seed to every comparison; a seed per replication averages over the
random flips and resamples rather than fixing one draw of them). The data are drawn with numpy for CHUNK
replications at a time; the test and the interval run once per replication, as the report runs them (the sign
flips of a replication with more than 16 non-zero family totals are the production function's own 10,000 random
flips).

Prints what each simulation rests on, then per metric and n: the families per replication, the share of
replications whose sign-flip p was enumerated exactly, the false-positive rate with its Monte-Carlo standard
error, the share of replications whose family totals allow p < 0.05 at all (with few non-zero totals no sign
pattern does: four totals of +-1 give p >= 1/16) and the false-positive rate among them, the coverage with its
standard error, the mean width of the interval and the seconds taken; each rate against its goal (false
positives 5% +- 1.5 points, coverage 94-96%) at n = 100 and 1000, while at n = 20 the same figures say what holds,
with no goal.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from spark_eval.stats.bootstrap import LEVEL, cluster_ci
from spark_eval.stats.load import load_runs, tidy
from spark_eval.stats.paired import family_totals, sign_flip_name, sign_flip_p
from spark_eval.stats.units import choose_judge, record_table

ALPHA = 0.05
FPR_GOAL = (0.035, 0.065)
COVERAGE_GOAL = (0.94, 0.96)
GOAL_SIZES = (100, 1000)
REFERENCE = "reference"  # the reference solutions' model name (stats.compare.REFERENCE): not a coder
CHUNK = 100  # replications whose data are drawn at once


@dataclass(frozen=True)
class Source:
    """What one metric's simulation draws from: a distribution over `support` per problem, grouped in families."""

    metric: str
    support: np.ndarray
    cdf: np.ndarray
    """[problems, len(support)]: each problem's cumulative distribution over `support`."""
    members: list[np.ndarray]
    """Per family, the rows of `cdf` of its problems."""
    records: int
    own: int
    """Problems with records of their own (the rest take their family's distribution)."""
    mean: float


def family_table(records: pd.DataFrame, mode: str, overrides: Sequence[str]) -> dict[int, str]:
    """problem_id -> origin family label (`Library/id`, as records name it) of every problem the families hold."""
    if mode == "records":
        return dict(zip(records["problem_id"], records["family"]))
    from spark_eval.config import compose_config
    from spark_eval.data import build_benchmark

    problems = build_benchmark(compose_config(*overrides).dataset).problems()
    families = {p.problem_id: f"{p.origin_family[0]}/{p.origin_family[1]}" for p in problems}
    seen = records.drop_duplicates("problem_id")
    wrong = [(pid, fam) for pid, fam in zip(seen["problem_id"], seen["family"]) if families.get(pid) != fam]
    if wrong:
        raise SystemExit(f"{len(wrong)} problems of the runs are not in the configured benchmark's families (e.g. "
                         f"problem {wrong[0][0]}, family {wrong[0][1]}); give --families records, or the benchmark "
                         "the runs used as a config override")
    return families


def build_source(metric: str, values: pd.DataFrame, families: dict[int, str], mode: str, prior: float) -> Source:
    """The per-problem distributions of `values` (problem_id, family, value: one row per record), see the module."""
    support = np.unique(values["value"].to_numpy())
    column = np.searchsorted(support, values["value"].to_numpy())
    own_ids = np.unique(values["problem_id"].to_numpy())
    own_row = {pid: i for i, pid in enumerate(own_ids)}
    counts = np.zeros((len(own_ids), len(support)))
    np.add.at(counts, ([own_row[pid] for pid in values["problem_id"]], column), 1.0)
    overall = counts.sum(axis=0) / counts.sum()
    touched = sorted({families[pid] for pid in own_ids})
    ids_of: dict[str, list[int]] = {name: [] for name in touched}
    for pid, name in sorted(families.items()):
        if name in ids_of and (mode == "dataset" or pid in own_row):
            ids_of[name].append(pid)
    rows, members = [], []
    for name in touched:
        family_counts = counts[[own_row[pid] for pid in ids_of[name] if pid in own_row]].sum(axis=0)
        family = (family_counts + prior * overall) / (family_counts.sum() + prior)
        start = len(rows)
        for pid in ids_of[name]:
            mine = counts[own_row[pid]] if pid in own_row else np.zeros(len(support))
            rows.append((mine + prior * family) / (mine.sum() + prior))
        members.append(np.arange(start, len(rows)))
    cdf = np.cumsum(np.array(rows), axis=1)
    cdf[:, -1] = 1.0
    return Source(metric, support, cdf, members, records=len(values), own=len(own_ids),
                  mean=float(values["value"].mean()))


def draw(source: Source, n: int, reps: int, per_arm: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`reps` A/A replications at n problems: per-problem differences [reps, n] and their family labels [reps, n]."""
    sizes = np.array([len(m) for m in source.members])
    width = sizes.max()
    padded = np.full((len(sizes), width), -1)
    for f, rows in enumerate(source.members):
        padded[f, :len(rows)] = rows
    chosen = rng.integers(0, len(sizes), size=(reps, n))  # n draws always reach n problems
    slots = padded[chosen].reshape(reps, n * width)  # each draw's problems, then padding
    labels = np.repeat(np.arange(n), width)[None, :].repeat(reps, axis=0)
    keep = slots >= 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # the first n real problems, in draw order
    problems = np.take_along_axis(slots, order, axis=1)
    families = np.take_along_axis(labels, order, axis=1)
    cdf = source.cdf[problems]  # [reps, n, support]
    u = rng.random((2, per_arm, reps, n, 1))
    picked = np.minimum((u > cdf[None, None]).sum(axis=-1), len(source.support) - 1)
    arms = source.support[picked].mean(axis=1)  # [2, reps, n]
    return arms[0] - arms[1], families


def simulate(source: Source, n: int, reps: int, per_arm: int, bootstrap: int, seed: int) -> dict[str, float]:
    """Runs the production test and interval on `reps` replications; their rates and standard errors."""
    rng = np.random.default_rng([seed, n])
    rejected, covered, widths, families, exact, reachable = [], [], [], [], [], []
    for start in range(0, reps, CHUNK):
        diffs, labels = draw(source, n, min(CHUNK, reps - start), per_arm, rng)
        for i, (d, f) in enumerate(zip(diffs, labels), start=start):
            p = sign_flip_p(d, f, seed=i)
            low, high = cluster_ci(d, f, bootstrap, seed=i)
            totals, _ = family_totals(d, f)
            rejected.append(p < ALPHA)
            covered.append(low <= 0.0 <= high)
            widths.append(high - low)
            families.append(len(totals))
            exact.append(sign_flip_name(d, f).endswith("(exact)"))
            # the smallest p these family totals allow: every total on one side (beyond EXACT_FAMILIES non-zero
            # totals it is (1/2) / (FLIPS + 1), far below ALPHA)
            reachable.append(not exact[-1] or sign_flip_p(np.abs(totals), np.arange(len(totals)), seed=i) < ALPHA)
    fpr, cov = np.mean(rejected), np.mean(covered)
    can = np.asarray(reachable)
    return {"families": float(np.mean(families)), "exact": float(np.mean(exact)), "fpr": fpr,
            "reachable": float(can.mean()), "fpr_reachable": float(np.mean(np.asarray(rejected)[can])) if can.any()
            else float("nan"),
            "fpr_se": float(np.sqrt(fpr * (1 - fpr) / reps)), "coverage": cov,
            "coverage_se": float(np.sqrt(cov * (1 - cov) / reps)), "width": float(np.mean(widths))}


def verdict(value: float, goal: tuple[float, float], n: int) -> str:
    holds = goal[0] <= value <= goal[1]
    if n in GOAL_SIZES:
        return "meets" if holds else "MISSES"
    return "(in band)" if holds else "(out of band)"


def describe(source: Source, mode: str, per_arm: int, prior: float) -> str:
    """What the simulation of `source` rests on, in a few lines."""
    sizes = np.array([len(m) for m in source.members])
    pmf = np.diff(source.cdf, axis=1, prepend=0.0)
    means = pmf @ source.support
    spread = np.sqrt(np.maximum(pmf @ source.support ** 2 - means ** 2, 0.0))
    where = "DS-1000's origin families (the benchmark's)" if mode == "dataset" else "the records' own families"
    counts = ", ".join(f"{size}: {count}" for size, count in enumerate(np.bincount(sizes)) if count)
    return "\n".join([
        f"{source.metric}: {source.records} records on {source.own} problems, in {len(sizes)} of {where}",
        f"  those families hold {sizes.sum()} problems; {sizes.sum() - source.own} without records of their own take "
        f"their family's distribution; families by size (problems: families) {counts}",
        f"  values {{{', '.join(f'{v:g}' for v in source.support)}}}, mean {source.mean:.3f}; per-problem mean "
        f"10/50/90th percentiles {' / '.join(f'{q:.3f}' for q in np.percentile(means, [10, 50, 90]))}, per-problem "
        f"sd mean {spread.mean():.3f}; prior m = {prior:g} record(s); {per_arm} record(s) per problem and arm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, nargs="+", help="globs of run directories (quote them)")
    parser.add_argument("--sizes", default="20,100,1000", help="problems per simulated comparison")
    parser.add_argument("--reps", type=int, default=2000, help="replications per metric and size")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples of each interval (report.bootstrap)")
    parser.add_argument("--prior", type=float, default=1.0, help="pseudo-count m towards the family (records)")
    parser.add_argument("--records", type=int, default=0, help="records per problem and arm (0: the runs' median)")
    parser.add_argument("--families", choices=("dataset", "records"), default="dataset")
    parser.add_argument("--quality-judge", default="", help="which quality judge, when the runs hold several")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*",
                        help="config overrides for the benchmark (dataset.path=...), given before --runs")
    args = parser.parse_args()

    runs = [run for run in load_runs(args.runs) if run.model != REFERENCE]
    if not runs:
        raise SystemExit(f"no run of a coder (other than the reference solutions) matches {' '.join(args.runs)}")
    frame = tidy(runs)
    judge = choose_judge(frame, "quality", args.quality_judge)
    records = record_table(frame, judge)
    records = records[records["error"].isna()]
    per_arm = args.records or int(records.groupby(["run_dir", "problem_id"]).size().median())
    families = family_table(records, args.families, args.overrides)
    print(f"runs ({len(runs)}, {' '.join(args.runs)}): "
          f"{', '.join(f'{run.path.name} ({len(run.records)} records)' for run in runs)}")
    columns = ["problem_id", "family", "value"]
    sources = [build_source("pass", records.assign(value=records["passed"])[columns], families, args.families,
                            args.prior)]
    scored = records[records["quality"].notna()]
    if len(scored):
        sources.append(build_source("quality", scored.assign(value=scored["quality"])[columns], families,
                                    args.families, args.prior))
    for source in sources:
        print(describe(source, args.families, per_arm, args.prior))
    if len(scored) == 0:
        print("quality: the runs hold no quality verdicts (they were run without a quality judge); not simulated")
    print(f"\nA/A: {args.reps} replications per row; sign-flip p < {ALPHA:g} is a false positive (goal "
          f"{FPR_GOAL[0]:.1%}-{FPR_GOAL[1]:.1%}); the {LEVEL:.0%} CI covers 0 (goal {COVERAGE_GOAL[0]:.0%}-"
          f"{COVERAGE_GOAL[1]:.0%}); goals at n = {', '.join(map(str, GOAL_SIZES))}, n = 20 says what holds; "
          f"{args.bootstrap} bootstrap resamples\n")
    print(f"{'metric':<8}{'n':>6}{'families':>10}{'exact':>7}{'false pos.':>12}{'se':>7}  {'goal':<14}"
          f"{'can reject':>11}{'fp there':>10}{'coverage':>10}{'se':>7}  {'goal':<14}{'CI width':>9}{'s':>6}")
    for source in sources:
        for n in (int(s) for s in args.sizes.split(",")):
            start = time.monotonic()
            found = simulate(source, n, args.reps, per_arm, args.bootstrap, args.seed)
            there = "-" if np.isnan(found["fpr_reachable"]) else f"{found['fpr_reachable']:.2%}"
            print(f"{source.metric:<8}{n:>6}{found['families']:>10.1f}{found['exact']:>7.0%}{found['fpr']:>12.2%}"
                  f"{found['fpr_se']:>7.2%}  {verdict(found['fpr'], FPR_GOAL, n):<14}{found['reachable']:>11.1%}"
                  f"{there:>10}{found['coverage']:>10.2%}"
                  f"{found['coverage_se']:>7.2%}  {verdict(found['coverage'], COVERAGE_GOAL, n):<14}"
                  f"{found['width']:>9.4f}{time.monotonic() - start:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
