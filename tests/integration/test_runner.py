"""The runner end to end: run directory, answers files, resume after a kill, refusal of changed configs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from spark_eval.pipeline import run
from spark_eval.pipeline.rundir import RunDirectoryError
from tests.conftest import compose_config

FAST_IDS = [291, 292, 293, 294, 295, 296, 297, 298, 299, 300]


def reference_cfg(grading_python, ids, *extra):
    return compose_config(
        "experiment=reference",
        f"dataset.ids=[{','.join(map(str, ids))}]",
        f"execution.python={grading_python}",
        "execution.preload=[numpy,pandas]",
        "pipeline.progress=false",
        *extra,
    )


def read_records(run_dir):
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_answers_file_is_graded_into_a_run_directory(tmp_path, grading_python, problems):
    answers = tmp_path / "answers.jsonl"
    rows = [{"id": 291, "code": f"```python\n{problems[291].reference_code}```"}, {"id": 292, "code": "result = 0"},
            {"id": 711, "code": problems[711].reference_code + "</code>\nEND SOLUTION"}]
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = reference_cfg(grading_python, [291, 292, 711], "model=answers", f"model.path={answers}")
    summary = run(cfg, run_dir=tmp_path / "run")
    assert (summary["n"], summary["passed"]) == (3, 2)
    assert summary["by_library"]["Numpy"] == {"n": 2, "passed": 1, "pass_rate": 0.5, "infra_error": 0}
    records = {r["problem_id"]: r for r in read_records(tmp_path / "run")}
    assert records[292]["exec"]["status"] == "failed" and records[292]["code"] == "result = 0"
    assert records[711]["code"] == problems[711].reference_code
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["counts"]["passed"] == 2
    assert "numpy==1.26.4" in manifest["execution"]["grading_env"]["freeze"]
    assert manifest["execution"]["isolation"] in ("bwrap", "process")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["pass_rate"] == pytest.approx(2 / 3)


def test_missing_answer_becomes_a_record_error(tmp_path, grading_python):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": 291, "code": "result = a.shape"}) + "\n")
    summary = run(reference_cfg(grading_python, [291, 292], "model=answers", f"model.path={answers}"), tmp_path / "r")
    assert (summary["passed"], summary["errors"]) == (1, 1)


def test_rerun_skips_finished_keys_and_refuses_a_changed_config(tmp_path, grading_python):
    run(reference_cfg(grading_python, FAST_IDS[:2]), run_dir=tmp_path)
    first = (tmp_path / "records.jsonl").read_bytes()
    manifest = (tmp_path / "manifest.json").read_bytes()
    again = run(reference_cfg(grading_python, FAST_IDS[:2], "execution.workers=1"), run_dir=tmp_path)
    assert (tmp_path / "records.jsonl").read_bytes() == first
    assert again["n"] == 2 and (tmp_path / "manifest.json").read_bytes() == manifest  # its times and commit kept
    with pytest.raises(RunDirectoryError, match=r"execution.timeout_s: 120.0 -> 60.0"):
        run(reference_cfg(grading_python, FAST_IDS[:2], "execution.timeout_s=60"), run_dir=tmp_path)


def test_resume_after_kill_leaves_one_record_per_key(tmp_path, grading_python):
    ids = ",".join(map(str, FAST_IDS))
    command = [
        sys.executable, "-m", "spark_eval", "experiment=reference", f"dataset.ids=[{ids}]",
        f"execution.python={grading_python}", "execution.preload=[numpy]", "execution.workers=1",
        "pipeline.round_size=1", "pipeline.concurrency=1", "pipeline.progress=false", f"hydra.run.dir={tmp_path}",
    ]
    runner = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "records.jsonl"
    while runner.poll() is None and (not records.exists() or records.read_text().count("\n") < 3):
        time.sleep(0.05)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    killed_at = records.read_text().count("\n")
    assert 3 <= killed_at < len(FAST_IDS), "the runner finished before it could be killed"
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "running"
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = [r["key"] for r in read_records(tmp_path)]
    assert sorted(keys) == sorted(f"{i}/e0/r0" for i in FAST_IDS)
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "finished"


def test_a_second_writer_is_refused_while_a_run_holds_its_directory(tmp_path, grading_python, problems):
    """stage=judge on a run that is still writing stops with one line naming the run's process; nothing is lost
    or doubled, and once the run has finished the same stage=judge goes through."""
    answers = tmp_path.parent / f"{tmp_path.name}-slow-answers.jsonl"  # each answer takes 3 s to grade
    answers.write_text("".join(json.dumps({"id": i, "code": "import time\ntime.sleep(3)\n" + problems[i].reference_code})
                               + "\n" for i in FAST_IDS[:6]))
    command = [
        sys.executable, "-m", "spark_eval", "model=answers", f"model.path={answers}",
        f"dataset.ids=[{','.join(map(str, FAST_IDS[:6]))}]", f"execution.python={grading_python}",
        "execution.preload=[numpy]", "execution.workers=1", "pipeline.concurrency=1", "pipeline.progress=false",
        f"hydra.run.dir={tmp_path}",
    ]
    runner = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "records.jsonl"
    while runner.poll() is None and (not records.exists() or records.read_text().count("\n") < 1):
        time.sleep(0.05)
    judge = [sys.executable, "-m", "spark_eval", "stage=judge", f"run_dir={tmp_path}", "judge=none"]
    refused = subprocess.run(judge, capture_output=True, text=True, timeout=120)
    still_running = runner.poll() is None
    assert runner.wait(timeout=300) == 0
    assert still_running, "the run finished before the second writer could try"
    assert refused.returncode == 2, refused.stderr[-2000:]
    errors = [line for line in refused.stderr.splitlines() + refused.stdout.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"is in use by process {runner.pid} (a run)" in errors[0], errors
    keys = [r["key"] for r in read_records(tmp_path)]
    assert sorted(keys) == sorted(f"{i}/e0/r0" for i in FAST_IDS[:6])
    assert all(r["exec"]["status"] == "passed" for r in read_records(tmp_path))
    assert subprocess.run(judge, capture_output=True, timeout=120).returncode == 0
    assert sorted(r["key"] for r in read_records(tmp_path)) == sorted(keys)


def test_a_refused_command_leaves_the_runs_provenance_as_it_was(tmp_path, grading_python):
    """A second command refused (its identity differs, or the directory is locked) leaves the run's Hydra copy and
    manifest byte for byte; an admitted resume writes its own copy. stage=judge likewise."""
    from spark_eval.pipeline.rundir import RunLock

    command = [sys.executable, "-m", "spark_eval", "experiment=reference", "dataset.ids=[291]",
               f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
               f"hydra.run.dir={tmp_path}"]
    subprocess.run(command, check=True, capture_output=True)
    names = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "manifest.json")
    kept = {name: (tmp_path / name).read_bytes() for name in names}
    assert b"timeout_s: 120.0" in kept[".hydra/config.yaml"]

    refused = subprocess.run(command + ["execution.timeout_s=60"], capture_output=True, text=True)
    assert refused.returncode == 2 and "execution.timeout_s: 120.0 -> 60.0" in refused.stdout + refused.stderr
    lock = RunLock(tmp_path, "a test")
    try:
        held = subprocess.run(command, capture_output=True, text=True)
        judged = subprocess.run([sys.executable, "-m", "spark_eval", "stage=judge", f"run_dir={tmp_path}",
                                 "judge=none"], capture_output=True, text=True)
    finally:
        lock.release()
    for refusal in (held, judged):
        output = refusal.stdout + refusal.stderr
        assert refusal.returncode == 2 and f"in use by process {os.getpid()} (a test)" in output
    assert {name: (tmp_path / name).read_bytes() for name in names} == kept
    assert not (tmp_path / ".hydra-judge").exists()

    subprocess.run(command + ["execution.workers=1"], check=True, capture_output=True)
    assert {name: (tmp_path / name).read_bytes() for name in names} == kept  # finished: nothing to do, nothing kept
    manifest = json.loads(kept["manifest.json"])
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if it was killed
    subprocess.run(command + ["execution.workers=1"], check=True, capture_output=True)
    assert b"workers: 1" in (tmp_path / ".hydra" / "config.yaml").read_bytes()
    assert b"execution.workers=1" in (tmp_path / ".hydra" / "overrides.yaml").read_bytes()
