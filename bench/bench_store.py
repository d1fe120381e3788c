"""Concurrent learners against the shared store: SQLite (one file) and PostgreSQL (a throwaway local server).

    PYTHONPATH=. python bench/bench_store.py                      # 8 processes x 25 rounds, both backends
    PYTHONPATH=. python bench/bench_store.py --processes 4 --rounds 10 --backends sqlite

Each process is a learner. A round of learning is what OnlineExperience does after a round of problems: look up
which of its 4 traces are known, then one write transaction that adds them and runs a curation step (2 candidate
insights: one of its own, one that every learner proposes, so it merges; helpful/harmful counters on the shared
insight; the stream's base rate in the store's settings; retirement), and finally re-reading the active insights
(the memory reloads them). Printed per backend: wall time and rounds/s over all processes, and
whether the exact totals came out (traces, endorsements and counters of the shared insight, the base rate), which
they must: a lost update shows as a wrong total. The PostgreSQL server runs on this machine, so its figures show
the cost of the protocol and the locking, not of a network.
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learning.curator import CurationPolicy, Curator
from spark_eval.memory.learning.learner import Candidate, insight_id
from spark_eval.memory.store.open import open_store
from tests.fakes.embedder import HashEmbedder

SHARED = ("Shared lesson", "Every learner proposes this lesson about axis arguments")
TRACES_PER_ROUND = 4


def lesson(worker: int, round_: int, title: str, content: str) -> Candidate:
    return Candidate(title=title, content=content, tags=(), applies_when="", library="Numpy",
                     sources=({"problem_id": round_, "family": f"Numpy/{round_}", "record_key": f"w{worker}/{round_}",
                               "epoch": 0, "round": round_, "model": f"learner-{worker}"},))


def learner(location: str, worker: int, rounds: int, barrier, results) -> None:
    store = open_store(location)
    curator = Curator(store, HashEmbedder(dim=4096), CurationPolicy(duplicate_threshold=0.95, retire_margin=10**6),
                      LeakGuard())
    shared = insight_id(*SHARED)
    barrier.wait()
    for r in range(rounds):
        traces = [{"key": f"w{worker}/r{r}/t{t}", "problem_id": r} for t in range(TRACES_PER_ROUND)]
        store.known_traces([t["key"] for t in traces])
        own = lesson(worker, r, f"Lesson {worker} {r}", f"learner{worker} round{r} lesson number {worker * 1000 + r}")
        with store.transaction():
            store.add_traces(traces)
            curator.apply([own, lesson(worker, r, *SHARED)], {}, {shared: (1, 1)}, {"epoch": 0, "round": r},
                          graded=(1, 3))
        store.items("insight")
    results.put(worker)
    store.close()


def run(location: str, processes: int, rounds: int) -> dict:
    open_store(location).close()  # the schema exists before the learners start
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=learner, args=(location, w, rounds, barrier, results))
               for w in range(processes)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for _ in workers:  # each learner reports when it has finished its rounds
        results.get(timeout=1800)
    wall = time.perf_counter() - started
    for w in workers:
        w.join()
    store = open_store(location)
    steps = processes * rounds
    item = store.get_items([insight_id(*SHARED)])[0]
    checks = {
        "traces": (len(store.traces()), steps * TRACES_PER_ROUND),
        "shared endorsements": (item.endorsements, steps),
        "shared helpful/harmful": ((item.helpful, item.harmful), (steps - 1, steps - 1)),
        "base rate": (store.get_meta("graded_outcomes"), [steps, 3 * steps]),
        "insights": (store.count("insight"), steps + 1),
    }
    store.close()
    return {"wall_s": wall, "rounds": steps, "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                found = run(str(Path(folder) / "store.sqlite"), args.processes, args.rounds)
            else:
                from tests.fakes.pgserver import ThrowawayPostgres

                with ThrowawayPostgres() as server:
                    found = run(server.url, args.processes, args.rounds)
            exact = all(got == want for got, want in found["checks"].values())
            print(f"{backend:9s} {args.processes} processes x {args.rounds} rounds: {found['wall_s']:.2f} s, "
                  f"{found['rounds'] / found['wall_s']:.1f} rounds/s (one write transaction each); "
                  f"totals {'exact' if exact else 'WRONG'}")
            for name, (got, want) in found["checks"].items():
                if got != want:
                    print(f"  {name}: {got}, expected {want}")


if __name__ == "__main__":
    main()
