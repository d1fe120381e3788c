"""bench/bench_crash.py's checks on a real learning run (scripted agent and learner): a copy passes them, and a
record written twice, an outcome counted twice or a record learned twice each fail them."""
import json
import shutil

import pytest

from bench import bench_crash
from spark_eval.pipeline import run
from tests.integration.test_memory_runs import lines, memory_cfg


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory, grading_python):
    """Round 1 (293, 294) is advised with the insight round 0 learned: its counters move."""
    path = tmp_path_factory.mktemp("reference")
    run(memory_cfg(grading_python, "memory.exclude_family=false"), run_dir=path)
    return path


def copy_of(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "copy")


def rewrite(path, edit):
    rows = lines(path)
    path.write_text("".join(json.dumps(row) + "\n" for row in edit(rows)))


def test_a_copy_passes_every_check_and_its_outcomes_are_counted(learned_run, tmp_path):
    checks = bench_crash.check_runs(learned_run, copy_of(learned_run, tmp_path))
    assert {name: check["ok"] for name, check in checks.items()} == dict.fromkeys(checks, True)
    assert checks["outcomes"]["outcomes_counted"] == checks["outcomes"]["outcomes_in_records"] == 2
    assert checks["outcomes"]["traces"] == checks["outcomes"]["records_that_ran"] == 4


def test_a_record_written_twice_fails_the_records(learned_run, tmp_path):
    copy = copy_of(learned_run, tmp_path)
    rewrite(copy / "records.jsonl", lambda rows: rows + rows[-1:])
    checks = bench_crash.check_runs(learned_run, copy)
    assert not checks["records"]["ok"] and checks["records"]["twice"] == [lines(copy / "records.jsonl")[-1]["key"]]


def test_an_outcome_counted_twice_fails_the_outcomes(learned_run, tmp_path):
    copy = copy_of(learned_run, tmp_path)
    final = copy / "memory" / "final"
    rewrite(final / "insights.jsonl", lambda rows: [{**row, "helpful": row["helpful"] + 1} for row in rows])
    checks = bench_crash.check_runs(learned_run, copy)
    insight = lines(final / "insights.jsonl")[0]["id"]
    assert not checks["outcomes"]["ok"]
    assert checks["outcomes"]["wrong"][insight] == {"counters": (3, 0), "records": (2, 0), "updates": (2, 0)}


def test_a_record_learned_twice_fails_the_outcomes(learned_run, tmp_path):
    copy = copy_of(learned_run, tmp_path)
    rewrite(copy / "memory" / "final" / "traces.jsonl", lambda rows: rows + rows[:1])
    checks = bench_crash.check_runs(learned_run, copy)
    assert not checks["outcomes"]["ok"] and len(checks["outcomes"]["learned_twice"]) == 1


def test_the_kill_moments_spread_over_the_replies_in_order():
    moments = bench_crash.kill_moments(20, {"stream_s": 100.0, "replies": 10}, seed=0)
    assert len(moments) == 20 and moments == sorted(moments)
    assert all(0 <= replies < 10 and 0 <= extra < 10.0 for replies, extra in moments)
    assert len({replies for replies, _ in moments}) > 5
