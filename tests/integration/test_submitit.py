"""Sweeps whose jobs run as separate processes through Hydra's submitit launcher (`hydra/launcher=submitit_local`):
two community members learn into one PostgreSQL store at once; a job killed in the middle resumes when the
sweep is launched again (as a cluster requeues it)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spark_eval.config import PROJECT_ROOT

AGENT_REPLY = json.dumps({"intent": "shape of an array", "library": "Numpy", "queries": ["array shape", "nan"],
                          "avoid": "", "advice": "Use the array's attributes.", "cited": [1]})
LEARNER_REPLY = json.dumps({"insights": [{"library": "Numpy", "api": ["numpy.isnan"], "title": "NaN handling",
                                          "content": "np.isnan gives a mask of NaNs.", "applies_when": "arrays with NaN"}]})
IDS = [291, 292, 293, 294, 295, 296, 297, 298]  # four for each member


def condition_file(folder: Path, store: str, grading_python: str) -> None:
    """A condition of the test's own (searched before the project's): scripted agent and learner, a bag-of-words
    embedder, the reference answers under the members' names, one shared store."""
    (folder / "condition").mkdir(parents=True)
    (folder / "model").mkdir(parents=True)
    for name, extra, reply in (("agent", ", delay_s: 0.5", AGENT_REPLY), ("learner", "", LEARNER_REPLY)):
        (folder / "model" / f"scripted_{name}.yaml").write_text(
            f"{{_target_: tests.fakes.scripted.ScriptedModel, name: {name}{extra}, replies: [{json.dumps(reply)}]}}\n")
    (folder / "condition" / "members.yaml").write_text(f"""# @package _global_
defaults:
  - override /memory: experience_only
  - override /model@agent: scripted_agent
  - override /model@learner: scripted_learner
  - override /hydra/launcher: submitit_local
community:
  members: [one, two]
dataset:
  ids: [{", ".join(map(str, IDS))}]
execution:
  python: {grading_python}
  preload: [numpy]
pipeline:
  progress: false
  round_size: 2
  share: ${{spark_share:${{model.name}},${{community.members}}}}
memory:
  store: {store}
  exclude_family: false
  embedder: {{_target_: tests.fakes.embedder.HashEmbedder}}
hydra:
  callbacks:
    sweep_progress:
      interval_s: 1
""")


def sweep(folder: Path, sweep_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "spark_eval", "-m", f"hydra.searchpath=[file://{folder}]", "condition=members",
               "model.name=one,two", f"hydra.sweep.dir={sweep_dir}", "experiment_name=members"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def job_pid(run_dir: Path) -> int:
    """The process of the job writing `run_dir`: its lock file names it."""
    return int((run_dir / ".lock").read_text().split()[1])


def test_submitit_local_sweep_of_two_members_learning_into_one_postgres_store_resumes_a_killed_job(
        tmp_path, grading_python, postgres_db):
    condition_file(tmp_path / "conf", postgres_db, grading_python)
    sweep_dir = tmp_path / "sweep"
    one, two = sweep_dir / "one__experience_only__s0", sweep_dir / "two__experience_only__s0"

    first = sweep(tmp_path / "conf", sweep_dir)
    deadline = time.monotonic() + 300
    while len(records(one)) < 1:  # member one is under way: kill its job (a preempted cluster job)
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.poll() else ""
        time.sleep(0.2)
    os.kill(job_pid(one), signal.SIGKILL)
    output, _ = first.communicate(timeout=300)
    assert first.returncode != 0  # the sweep reports its failed job
    killed = records(one)
    assert 1 <= len(killed) < 4 and json.loads((one / "manifest.json").read_text())["status"] == "running"

    again = sweep(tmp_path / "conf", sweep_dir)  # requeued: the same sweep, the same run directories
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output[-3000:]
    assert "jobs 2/2 finished" in output and "records 8/8" in output  # the sweep's progress line
    for run_dir, ids in ((one, IDS[0::2]), (two, IDS[1::2])):
        done = records(run_dir)
        assert sorted(r["problem_id"] for r in done) == ids  # each problem once, the killed job's kept
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"
    assert records(one)[: len(killed)] == killed  # what the killed job wrote is untouched
    from spark_eval.memory.store.open import open_store

    store = open_store(postgres_db)
    traces = {t["key"].split("/")[0] for t in store.traces()}
    assert traces == {"one", "two"} and len(store.traces()) == 8  # every record learned from once, by both members
    insight = store.items("insight")[0]
    assert set(insight.contributors) == {"one", "two"}
    store.close()
