"""Spark's run survives SIGKILL: killed at random moments and resumed after each, it ends as an uninterrupted run.

    python bench/bench_crash.py                                  # 6 problems, rounds of 3, 20 kills
    python bench/bench_crash.py --kills 3 --limit 4 --round-size 2   # a quick look
    python bench/bench_crash.py --out results/bench/crash.json   # the figures, each kill and each check as JSON

Runs `python -m spark_eval model=local memory=spark_small judge=none` (the embedded coder, agent, learner and
embedder; learning after each round) on a stratified set twice, each into a run directory of its own under a work
folder: once without interruption (the reference), then with SIGKILL sent to its process group at `--kills` moments
drawn from `--seed`, each followed by the same command, which resumes; the last attempt runs to its end. Each run
has its own response cache, empty at its start, so the killed run computes its replies and the kills land in model
calls, gradings, learning and the writes between them; the weights are read where they lie, and the documentation
KB is built once into the work folder for both. The moments are spread uniformly over the reference's model
replies (every call the coder, agent and learner made): the kill drawn at 7.4 replies comes 0.4 of the seconds a
reply took on average after the killed run's response cache holds 7. A resumed run finds the replies of its
killed attempts in that cache, so the kills move through the run whatever a start costs.

Prints each kill (when, where it landed: startup, stream, learning or finishing; the records on disk before and
after), the wall times, then PASS or FAIL for each check, and exits 1 on a FAIL:

- records: each key once, the reference's keys, each record the reference's (timings, cache flags, request ids
  and what a call cost aside: SPEND), none ended in an error, no torn line;
- memory: the final state (memory/final/state.json: hash and counts; the manifest's memory.state_hash) and the
  curation log (ops.jsonl, times aside) are the reference's;
- outcomes: each record learned once (the store's traces: one per record that ran, no key twice), and each
  insight's helpful/harmful counters equal the outcomes of the records that used it (experience.outcomes over
  records.jsonl), and the sum of its UPDATE operations;
- health: memory/health.jsonl has one row per round learned, the reference's rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spark_eval.memory.learning.loop import outcomes, trace_key
from spark_eval.records import read_lines, read_records
from spark_eval.records.run import (FINAL, HEALTH, MANIFEST, MEMORY, RECORDS, SNAPSHOT_INSIGHTS, SNAPSHOT_OPS,
                                    SNAPSHOT_STATE, SNAPSHOT_TRACES, STORE)

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = frozenset({"latency_s", "duration_s", "cached", "request_id"})
"""Record fields allowed to differ between two runs of the same problems, at any depth: timings, whether a reply
came from the response cache, a provider's request id."""
SPEND = ("calls", "cached", "input_tokens", "output_tokens", "cost_usd")
"""What a `usage` counts of the calls made, not of those replayed from the response cache: a resumed record whose
calls its killed attempt made (and the cache kept) counts them as `cached`, their tokens nowhere. Compared as
`requests`, calls and cached together."""
POLL_S = 0.5
ORPHAN_GRACE_S = 15.0
"""How long the processes a killed run started in sessions of their own (the sandbox's fork servers, which end at
the end of their input) may take to end before the bench ends them."""


@dataclass
class Attempt:
    """One start of the killed run's command, and where its kill was to come: `extra_s` seconds after its response
    cache holds `replies` replies (None: let it finish)."""

    number: int
    replies: int | None = None
    extra_s: float = 0.0
    seconds: float = 0.0  # from its start to its kill or its end
    killed: bool = False
    landed: str = ""  # startup | stream | learning | finishing (of a kill)
    records_before: int = 0
    records_after: int = 0
    replies_after: int = 0
    left_running: int = 0  # processes of the killed run still there ORPHAN_GRACE_S after the kill
    returncode: int | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="problems (stratified over the libraries)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--round-size", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder of both runs and their caches (default: a new temporary folder); a finished "
                             "reference of the same size found there is used again")
    parser.add_argument("--models", type=Path, default=ROOT / "results" / ".cache" / "models",
                        help="the folder the weights lie in (only read)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures, kills and checks as JSON")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench_crash-"))).resolve()
    print(f"work folder {work}", flush=True)
    reference = run_reference(args, work)
    started = time.monotonic()
    attempts = run_killed(args, work, reference)
    killed = {"wall_s": round(time.monotonic() - started, 1), **kill_figures(attempts)}
    checks = check_runs(work / reference["name"] / "run", work / killed_name(args) / "run")
    report = {"command": " ".join(command(args, work, reference["name"])[1:]), "reference": reference,
              "killed": killed, "attempts": [asdict(a) for a in attempts], "checks": checks}
    show(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0 if all(c["ok"] for c in checks.values()) else 1)


def command(args: argparse.Namespace, work: Path, name: str) -> list[str]:
    """The run's command: its run directory and response cache in `work/name`, the KB in `work/kb`."""
    return [sys.executable, "-m", "spark_eval", "model=local", "memory=spark_small", "judge=none",
            f"dataset.limit={args.limit}", f"pipeline.round_size={args.round_size}", "pipeline.progress=false",
            f"hydra.run.dir={work / name / 'run'}", f"paths.cache={work / name / 'cache'}",
            f"memory.kb.cache_dir={work / 'kb'}", f"memory.embedder.model_dir={args.models}",
            *(f"{node}.weights_dir={args.models}" for node in ("model", "agent", "learner"))]


def killed_name(args: argparse.Namespace) -> str:
    return f"killed-n{args.limit}-r{args.round_size}-k{args.kills}-s{args.seed}"


def run_reference(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The uninterrupted run (or the one an earlier call left finished in `work`): its wall seconds, its stream's
    (the manifest's wall_s) and the replies its response cache stored."""
    name = f"reference-n{args.limit}-r{args.round_size}"
    figures = work / name / "figures.json"
    if figures.is_file():
        print(f"reference: {work / name} is finished; used again", flush=True)
        return json.loads(figures.read_text())
    build_kb(command(args, work, name))
    print(" ".join(command(args, work, name)[1:]), flush=True)
    attempt = Attempt(0)
    start(attempt, command(args, work, name), work / name, args.round_size)
    if attempt.returncode != 0:
        sys.exit(f"the reference run failed (exit code {attempt.returncode}); see {work / name / 'log.txt'}")
    manifest = json.loads((work / name / "run" / MANIFEST).read_text())
    result = {"name": name, "wall_s": round(attempt.seconds, 1), "stream_s": manifest["wall_s"],
              "records": attempt.records_after, "replies": attempt.replies_after}
    figures.write_text(json.dumps(result, indent=2) + "\n")
    return result


def build_kb(argv: list[str]) -> None:
    """The documentation KB the runs share, built before anything is timed (the first run would build it)."""
    from hydra.utils import instantiate

    from spark_eval.config import compose_config
    from spark_eval.memory.docs.kb import load_api_names, load_knowledge_base

    cfg = compose_config(*(a for a in argv[3:] if not a.startswith("hydra.")))
    started = time.monotonic()
    load_knowledge_base(cfg.memory.kb, instantiate(cfg.memory.embedder)).store.close()
    load_api_names(cfg.memory.kb)
    print(f"documentation KB ready in {time.monotonic() - started:.0f} s", flush=True)


def kill_moments(kills: int, reference: dict[str, Any], seed: int) -> list[tuple[int, float]]:
    """`kills` moments spread uniformly over the reference's work, its model replies: a point u of [0, replies)
    is `extra` seconds (u's fraction of the seconds one reply took on average) after the killed run's response
    cache holds floor(u) replies. In order, as the resumed run moves on."""
    draw = random.Random(seed)
    per_reply = reference["stream_s"] / max(reference["replies"], 1)
    points = sorted(draw.uniform(0, reference["replies"]) for _ in range(kills))
    return [(int(u), round((u - int(u)) * per_reply, 2)) for u in points]


def run_killed(args: argparse.Namespace, work: Path, reference: dict[str, Any]) -> list[Attempt]:
    """The same command in a run directory of its own, killed at `kill_moments` and started again after each;
    the last attempt runs to its end."""
    name = killed_name(args)
    if (work / name).exists():
        sys.exit(f"{work / name} exists: give another --work or --seed, or move it away")
    moments = kill_moments(args.kills, reference, args.seed)
    attempts: list[Attempt] = []
    for number, (replies, extra_s) in enumerate([*moments, (None, 0.0)]):
        attempt = Attempt(number, replies, extra_s)
        start(attempt, command(args, work, name), work / name, args.round_size)
        attempts.append(attempt)
        print(attempt_line(attempt), flush=True)
        if not attempt.killed:
            if attempt.returncode != 0:
                sys.exit(f"attempt {number} failed (exit code {attempt.returncode}); see {work / name / 'log.txt'}")
            break  # finished before its kill came: nothing is left to kill
    return attempts


def start(attempt: Attempt, argv: list[str], folder: Path, round_size: int) -> None:
    """Start `argv` in a session of its own (its output appended to folder/log.txt); SIGKILL its process group
    `attempt.extra_s` seconds after its response cache holds `attempt.replies` replies, if it still runs then.
    Fills `attempt`."""
    run_dir = folder / "run"
    folder.mkdir(parents=True, exist_ok=True)
    attempt.records_before = len(record_keys(run_dir))
    launched, began = time.time(), time.monotonic()
    with (folder / "log.txt").open("ab") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    reached = None
    while proc.poll() is None:
        if reached is None and attempt.replies is not None and stored_replies(folder) >= attempt.replies:
            reached = time.monotonic()
        left = POLL_S if reached is None else attempt.extra_s - (time.monotonic() - reached)
        if left <= 0:
            attempt.killed, attempt.left_running = True, kill(proc)
            attempt.landed = landed(run_dir, launched, round_size)
            break
        time.sleep(min(POLL_S, left))
    attempt.seconds, attempt.returncode = round(time.monotonic() - began, 2), proc.wait()
    attempt.records_after, attempt.replies_after = len(record_keys(run_dir)), stored_replies(folder)


def kill(proc: subprocess.Popen) -> int:
    """SIGKILL to `proc`'s process group. The processes it started in sessions of their own (the sandbox's fork
    servers) end at the end of their input; those still there after ORPHAN_GRACE_S are killed. Returns how many
    were."""
    others = {p for p in descendants(proc.pid) if process_group(p[0]) != proc.pid}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while any(alive(p) for p in others) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    left = [p for p in others if alive(p)]
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended meanwhile
    return len(left)


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below `root`: a pid alone could be another process's by the time it is
    checked again."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if fields := stat_fields(pid):
            found.add((pid, fields[19]))
            todo += children.get(pid, [])
    return found


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command's name: state, ppid, pgrp, ... (start time is index 19); None when the
    process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_group(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[2]) if fields else None


def alive(process: tuple[int, str]) -> bool:
    fields = stat_fields(process[0])
    return bool(fields) and fields[19] == process[1] and fields[0] != "Z"


def manifest_since(run_dir: Path, launched: float) -> dict[str, Any] | None:
    """The manifest, if an attempt launched at `launched` (a time.time()) wrote its start: it got past its
    startup."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    since = datetime.fromtimestamp(int(launched), timezone.utc).isoformat(timespec="seconds")
    return manifest if manifest.get("started_at", "") >= since else None


def landed(run_dir: Path, launched: float, round_size: int) -> str:
    """Where a kill landed, from what is on disk: `startup` (the manifest did not say this attempt started),
    `learning` (a round is on disk that the store has not learned), `finishing` (every record written and
    learned), else `stream` (engines and fork servers starting, problems in flight)."""
    manifest = manifest_since(run_dir, launched)
    if manifest is None:
        return "startup"
    keys, ids = record_keys(run_dir), manifest["problem_ids"]
    rounds = [ids[i : i + round_size] for i in range(0, len(ids), round_size)]
    written = sum(len(r) for r in rounds if all(f"{p}/e0/r0" in keys for p in r))
    if learned(run_dir) < written:
        return "learning"
    return "finishing" if len(keys) == len(ids) else "stream"


def record_keys(run_dir: Path) -> set[str]:
    """The keys of records.jsonl as a reader beside a run sees them (a torn last line skipped, not cut)."""
    return {row["key"] for row in read_lines(run_dir / RECORDS, repair=False)}


def learned(run_dir: Path) -> int:
    """Traces the run's store has learned from."""
    return count_rows(run_dir / MEMORY / STORE, "traces")


def stored_replies(folder: Path) -> int:
    """Replies in the run's response cache."""
    return count_rows(folder / "cache" / "responses.sqlite", "responses")


def count_rows(path: Path, table: str) -> int:
    """Rows of an SQLite table, read without writing; 0 before the file or the table exists."""
    if not path.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # created, its table not yet
        return 0


def kill_figures(attempts: list[Attempt]) -> dict[str, Any]:
    kills = [a for a in attempts if a.killed]
    return {"kills": len(kills), "attempts": len(attempts), "landed": dict(Counter(a.landed for a in kills)),
            "killed_s": round(sum(a.seconds for a in kills), 1),
            "records_at_last_kill": kills[-1].records_after if kills else 0,
            "replies": attempts[-1].replies_after,
            "left_running_after_a_kill": sum(a.left_running for a in kills),
            "last_attempt_s": attempts[-1].seconds}


def attempt_line(a: Attempt) -> str:
    if a.killed:
        what = f"killed {a.extra_s:6.2f} s after reply {a.replies:>3}, {a.seconds:7.2f} s in, in {a.landed:<9}"
    else:
        what = f"ran to its end in {a.seconds:.1f} s"
    extra = f"; {a.left_running} processes left running, ended by the bench" if a.left_running else ""
    return (f"attempt {a.number:>2}: {what}  records {a.records_before:>3} -> {a.records_after:<3} "
            f"replies {a.replies_after}{extra}")


# -- Checks -----------------------------------------------------------------------------------------------------


def check_runs(reference: Path, killed: Path) -> dict[str, dict[str, Any]]:
    return {"records": check_records(reference, killed), "memory": check_memory(reference, killed),
            "outcomes": check_outcomes(killed), "health": check_health(reference, killed)}


def check_records(reference: Path, killed: Path) -> dict[str, Any]:
    """Each key once, the reference's keys, each record the reference's but for VOLATILE fields; no error, no torn
    line."""
    path = killed / RECORDS
    rows = read_lines(path, repair=False)
    torn = path.read_bytes().count(b"\n") != len(rows)
    keys = Counter(row["key"] for row in rows)
    expected = {row["key"]: steady(row) for row in read_lines(reference / RECORDS, repair=False)}
    got = {row["key"]: steady(row) for row in rows}
    differ = {k: first_difference(expected[k], got[k]) for k in sorted(set(expected) & set(got))
              if expected[k] != got[k]}
    found = {"records": len(rows), "twice": sorted(k for k, n in keys.items() if n > 1),
             "missing": sorted(set(expected) - set(keys)), "extra": sorted(set(keys) - set(expected)),
             "differ": differ, "errors": sorted(row["key"] for row in rows if row.get("error")), "torn": torn}
    ok = not (torn or found["twice"] or found["missing"] or found["extra"] or differ or found["errors"])
    return {"ok": ok, **found}


def steady(value: Any) -> Any:
    """`value` without VOLATILE fields at any depth, each `usage` with its requests in place of its SPEND."""
    if isinstance(value, dict):
        return {k: steady_usage(v) if k == "usage" else steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def steady_usage(usage: Any) -> Any:
    if not isinstance(usage, dict):
        return usage
    requests = usage.get("calls", 0) + usage.get("cached", 0)
    return {"requests": requests, **{k: v for k, v in usage.items() if k not in SPEND and k not in VOLATILE}}


def first_difference(a: Any, b: Any, where: str = "") -> str:
    """The dotted path of the first place two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return where.lstrip(".") or "(the value)"


def check_memory(reference: Path, killed: Path) -> dict[str, Any]:
    """The final state (hash, counts; the manifest's memory.state_hash) and the curation log, times aside."""
    states = [json.loads((d / MEMORY / FINAL / SNAPSHOT_STATE).read_text()) for d in (reference, killed)]
    manifests = [json.loads((d / MANIFEST).read_text()) for d in (reference, killed)]
    logs = [[{k: v for k, v in op.items() if k not in ("time", "seq")}
             for op in read_lines(d / MEMORY / FINAL / SNAPSHOT_OPS, repair=False)] for d in (reference, killed)]
    found = {"state_hash": [s["hash"] for s in states], "counts_equal": states[0]["counts"] == states[1]["counts"],
             "manifest_state_hash": [m["memory"]["state_hash"] for m in manifests],
             "status": [m["status"] for m in manifests], "ops": [len(log) for log in logs],
             "ops_equal": logs[0] == logs[1]}
    ok = (len(set(found["state_hash"])) == 1 and found["counts_equal"] and found["ops_equal"]
          and len(set(found["manifest_state_hash"])) == 1 and found["status"] == ["finished", "finished"])
    return {"ok": ok, **found}


def check_outcomes(killed: Path) -> dict[str, Any]:
    """From the memory's own data: each record learned once, and each insight's counters those of the records
    that used it, counted once."""
    records = read_records(killed / RECORDS, repair=False)
    final = killed / MEMORY / FINAL
    traces = Counter(t["key"] for t in read_lines(final / SNAPSHOT_TRACES, repair=False))
    ran = {trace_key(r) for r in records if r.exec}
    counters = {i["id"]: (i["helpful"], i["harmful"]) for i in read_lines(final / SNAPSHOT_INSIGHTS, repair=False)}
    updates: dict[str, list[int]] = {}
    for op in read_lines(final / SNAPSHOT_OPS, repair=False):
        if op["op"] == "UPDATE":
            pair = updates.setdefault(op["item_id"], [0, 0])
            pair[0], pair[1] = pair[0] + op["detail"]["helpful"], pair[1] + op["detail"]["harmful"]
    expected = outcomes(records)
    ids = sorted(set(counters) | set(expected) | set(updates))
    wrong = {i: {"counters": counters.get(i, (0, 0)), "records": expected.get(i, (0, 0)),
                 "updates": tuple(updates.get(i, (0, 0)))} for i in ids
             if not counters.get(i, (0, 0)) == expected.get(i, (0, 0)) == tuple(updates.get(i, (0, 0)))}
    found = {"traces": sum(traces.values()), "records_that_ran": len(ran),
             "learned_twice": sorted(k for k, n in traces.items() if n > 1),
             "not_learned": sorted(ran - set(traces)), "insights": len(counters),
             "outcomes_counted": sum(h + b for h, b in counters.values()),
             "outcomes_in_records": sum(h + b for h, b in expected.values()), "wrong": wrong}
    ok = not (found["learned_twice"] or found["not_learned"] or wrong) and set(traces) == ran
    return {"ok": ok, **found}


def check_health(reference: Path, killed: Path) -> dict[str, Any]:
    """memory/health.jsonl: one row per round learned, the reference's rounds."""
    rounds = [[(h["epoch"], h["round"]) for h in read_lines(d / MEMORY / HEALTH, repair=False)]
              for d in (reference, killed)]
    return {"ok": rounds[0] == rounds[1], "rounds": rounds}


def show(report: dict[str, Any]) -> None:
    reference, killed = report["reference"], report["killed"]
    print(f"\n{report['command']}")
    print(f"reference: {reference['records']} records, {reference['replies']} model replies in "
          f"{reference['wall_s']} s (stream {reference['stream_s']} s)")
    print(f"killed run: {killed['kills']} kills (landed in {killed['landed']}), {killed['attempts']} attempts, "
          f"{killed['wall_s']} s in all ({killed['killed_s']} s in attempts that were killed); "
          f"{killed['records_at_last_kill']} records at the last kill; {killed['replies']} model replies; "
          f"{killed['left_running_after_a_kill']} processes left running after a kill")
    for name, check in report["checks"].items():
        detail = {k: v for k, v in check.items() if k != "ok" and not (v is False or v == [] or v == {})}
        print(f"{'PASS' if check['ok'] else 'FAIL'} {name}: {json.dumps(detail)[:600]}")
    if not report["checks"]["outcomes"]["outcomes_in_records"]:
        print("note: no record used an insight, so no counter moved; each record learned once is checked all the same")


if __name__ == "__main__":
    main()
