"""The sweep's progress line: jobs finished and running, records done, read from a sweep directory."""
import json
import logging
import os
import pickle
import subprocess
import sys
import time

from omegaconf import OmegaConf

from spark_eval.config import PROJECT_ROOT
from spark_eval.pipeline.sweep import (BASIC_SWEEPER, DatabaseUrlMask, SweepProgress, SweepReader, manifest_stamps,
                                       progress_line, sweep_job_count)


def write_job(sweep_dir, name, status, problems, records, identity=None, hydra_pipeline=None, counts=None):
    """A job directory as the runner leaves it: manifest.json, records.jsonl and Hydra's .hydra/config.yaml."""
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    manifest = {"status": status, "problem_ids": list(range(problems)),
                "identity": identity if identity is not None else {"pipeline.epochs": 1, "pipeline.repeats": 1}}
    if counts is not None:
        manifest["counts"] = {"records": counts}
    # records first, then the manifest in one rename: a watching thread never sees a job half written
    (job / "records.jsonl").write_text("".join(json.dumps({"key": f"{i}/e0/r0"}) + "\n" for i in range(records)))
    (job / "manifest.json.part").write_text(json.dumps(manifest, indent=2))
    os.replace(job / "manifest.json.part", job / "manifest.json")
    if hydra_pipeline is not None:
        (job / ".hydra" / "config.yaml").write_text(f"seed: 0\npipeline:\n  {hydra_pipeline}\n")
    return job


def snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_sweep_progress_line_on_a_fake_sweep(tmp_path, monkeypatch):
    sweep = tmp_path / "results" / "demo"
    write_job(sweep, "m__none__s0", "finished", problems=7, records=7, counts=7)
    write_job(sweep, "m__spark_small__s0", "running", problems=7, records=2)
    (sweep / "report").mkdir()  # stage=report's folder: no manifest, not a job
    (sweep / ".submitit").mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert progress_line(sweep, 2) == "sweep results/demo: jobs 1/2 finished, 1 running; records 9/14"
    assert progress_line(sweep, None) == "sweep results/demo: jobs 1 finished, 1 running; records 9/14"
    assert progress_line(tmp_path / "results" / "nothing-yet", 4) == (
        "sweep results/nothing-yet: jobs 0/4 finished, 0 running; records 0/0")
    assert snapshot(tmp_path) == before  # reading writes nothing


def test_sweep_progress_skips_half_written_files_and_reads_epochs_from_the_hydra_config(tmp_path):
    sweep = tmp_path / "sweep"
    running = write_job(sweep, "m__spark__s1", "running", problems=5, records=3, identity={},
                        hydra_pipeline="{epochs: 2, repeats: 3, round_size: 4}")
    with (running / "records.jsonl").open("a") as f:
        f.write('\n{"key": "3/e0/r0", "co')  # a blank line, and a record still being written
    write_job(sweep, "m__none__s1", "interrupted", problems=4, records=1, identity={"pipeline.epochs": 2})
    write_job(sweep, "m__none__s2", "running", problems=3, records=0, identity={})  # no .hydra/config.yaml
    torn = write_job(sweep, "m__none__s3", "running", problems=9, records=9)
    (torn / "manifest.json").write_text('{"status": "runn')  # skipped until it parses
    line = progress_line(sweep, 5)
    # 5 x 2 x 3 + 4 x 2 x 1 (repeats not in the identity nor a config: 1) + 3 x 1 x 1
    assert line.endswith(": jobs 0/5 finished, 2 running, 1 interrupted; records 4/41"), line
    (torn / "manifest.json").write_text(json.dumps({"status": "finished", "problem_ids": [1, 2]}))
    assert progress_line(sweep, 5).endswith(": jobs 1/5 finished, 2 running, 1 interrupted; records 13/43")


def test_sweep_reader_reads_appended_records_on_and_a_replaced_file_anew(tmp_path):
    sweep = tmp_path / "sweep"
    job = write_job(sweep, "j", "running", problems=10, records=2)
    reader = SweepReader(sweep)
    assert [j.done for j in reader.jobs()] == [2]
    records = job / "records.jsonl"
    with records.open("a") as f:
        f.write('{"key": "2/e0/r0"}\n{"key": "3/e0')
    assert [j.done for j in reader.jobs()] == [3]
    with records.open("a") as f:
        f.write('/r0"}\n')
    assert [j.done for j in reader.jobs()] == [4]
    replacement = job / "records.jsonl.tmp"  # how rewrite_records drops errored records: a new file, renamed
    replacement.write_text('{"key": "0/e0/r0"}\n')
    os.replace(replacement, records)
    assert [j.done for j in reader.jobs()] == [1]
    records.unlink()
    assert [(j.done, j.total) for j in reader.jobs()] == [(0, 10)]


def test_sweep_progress_counts_only_jobs_this_sweep_has_touched(tmp_path):
    """Job directories of an earlier sweep into the same folder (another memory, another seed) are left out
    until a job of this sweep rewrites their manifest."""
    sweep = tmp_path / "sweep"
    old = write_job(sweep, "m__spark__s0", "finished", problems=7, records=7)
    write_job(sweep, "m__none__s9", "finished", problems=7, records=7)
    baseline = manifest_stamps(sweep)
    assert progress_line(sweep, 2, baseline).endswith(": jobs 0/2 finished, 0 running; records 0/0")
    write_job(sweep, "m__none__s0", "running", problems=7, records=1)  # a job of this sweep starts
    resumed = old / "manifest.json.tmp"  # the old job is part of this sweep too: it starts again (write_json)
    resumed.write_text(json.dumps({"status": "running", "problem_ids": list(range(7))}))
    os.replace(resumed, old / "manifest.json")
    assert progress_line(sweep, 2, baseline).endswith(": jobs 0/2 finished, 2 running; records 8/14")


def test_sweep_job_count_from_sweeper_params_and_overrides():
    def config(params, task, sweeper=BASIC_SWEEPER):
        return OmegaConf.create({"hydra": {"sweeper": {"_target_": sweeper, "max_batch_size": None, "params": params},
                                           "overrides": {"task": task}}})

    assert sweep_job_count(config({"memory": "none,spark_small"}, ["experiment=demo", "seed=0,1"])) == 4
    assert sweep_job_count(config({"memory": "none,spark_small"}, ["experiment=demo"])) == 2
    assert sweep_job_count(config({"memory": "none,spark_small"}, ["memory=none", "seed=0,1,2"])) == 3  # CLI wins
    assert sweep_job_count(config(None, ["seed=range(0,4)", "model=local,reference", "+x=1"])) == 8
    assert sweep_job_count(config(None, [])) == 1
    assert sweep_job_count(config(None, ["seed=interval(0,1)"])) is None  # the BasicSweeper refuses it
    assert sweep_job_count(config({"seed": "0,1"}, [], sweeper="hydra_plugins.optuna.OptunaSweeper")) is None
    assert sweep_job_count(OmegaConf.create({})) is None


def test_sweep_progress_callback_logs_changes_then_the_final_line(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    write_job(sweep, "m__spark__s7", "finished", problems=3, records=3)  # an earlier sweep's
    config = OmegaConf.create({"hydra": {
        "sweep": {"dir": str(sweep)}, "overrides": {"task": ["seed=0,1"]},
        "sweeper": {"_target_": BASIC_SWEEPER, "max_batch_size": None, "params": {"memory": "none"}}}})
    callback = SweepProgress(interval_s=0.02)
    caplog.set_level(logging.INFO, logger="spark_eval")

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "spark_eval" and r.getMessage().startswith("sweep")]

    def wait_for(n):
        deadline = time.monotonic() + 10
        while len(lines()) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    callback.on_multirun_start(config)
    try:
        assert pickle.loads(pickle.dumps(callback)).interval_s == 0.02  # submitit pickles the callbacks
        time.sleep(0.1)
        assert lines() == []  # nothing of this sweep yet
        job = write_job(sweep, "m__none__s0", "running", problems=3, records=1)
        wait_for(1)
        with (job / "records.jsonl").open("a") as f:
            f.write('{"key": "1/e0/r0"}\n')
        wait_for(2)
        time.sleep(0.1)  # unchanged: no more lines
    finally:
        write_job(sweep, "m__none__s0", "finished", problems=3, records=3)
        callback.on_multirun_end(config)
    shown = os.path.relpath(sweep) if not os.path.relpath(sweep).startswith("..") else str(sweep)
    # the last records land before the manifest says finished: a poll between the two may log that state too
    between = f"sweep {shown}: jobs 0/2 finished, 1 running; records 3/3"
    assert [line for line in lines() if line != between] == [
        f"sweep {shown}: jobs 0/2 finished, 1 running; records 1/3",
        f"sweep {shown}: jobs 0/2 finished, 1 running; records 2/3",
        f"sweep {shown}: jobs 1/2 finished, 0 running; records 3/3"]
    assert lines().count(between) <= 1 and lines()[-1] != between
    assert callback._thread is None


def test_sweep_progress_callback_survives_an_unreadable_sweep(tmp_path, caplog):
    callback = SweepProgress(interval_s=0.01)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "file")}}})
    (tmp_path / "file").write_text("not a folder")
    callback.on_multirun_start(config)
    time.sleep(0.05)
    assert callback._thread.is_alive()
    callback.on_multirun_end(config)
    SweepProgress().on_multirun_end(config)  # never started: nothing to stop


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spark_eval", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=timeout)


def test_single_runs_and_cfg_are_untouched_by_the_sweep_callback():
    result = run_cli("--cfg", "job")
    assert result.returncode == 0 and "experiment_name: default" in result.stdout
    assert "sweep" not in result.stdout + result.stderr


def test_sweep_of_two_real_runs_logs_its_progress(tmp_path, grading_python):
    """A tiny multirun through Hydra (two seeds of the reference answers on one problem): the parent logs the
    sweep's line, its total from the command line's sweep."""
    result = run_cli("-m", "experiment=reference", "dataset.ids=[291]", "seed=0,1", f"paths.results={tmp_path}",
                     f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
                     "hydra.callbacks.sweep_progress.interval_s=0.2")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"sweep {tmp_path}/reference: jobs 2/2 finished, 0 running; records 2/2" in output
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == [
        "multirun.yaml", "reference__none__s0", "reference__none__s1"]


HYDRA_APP = """
import hydra


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    pass


main()
"""


def test_launch_lines_of_a_multirun_hide_database_passwords(tmp_path):
    """Hydra's launcher logs each job's overrides (`#0 : memory.store=postgresql://...`) after configuring logging
    anew: the callback's mask still hides the passwords."""
    (tmp_path / "app.py").write_text(HYDRA_APP)
    stores = "postgresql://spark:hunter2@db/mem,'postgresql://spark:s3cr%40t@db/mem?sslpassword=keypass'"
    result = subprocess.run([sys.executable, str(tmp_path / "app.py"), "-m", f"+store={stores}",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}",
                             "+hydra.callbacks.sweep_progress._target_=spark_eval.pipeline.sweep.SweepProgress"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "#0 : +store=postgresql://spark:***@db/mem" in output
    assert "#1 : +store='postgresql://spark:***@db/mem?sslpassword=***'" in output
    assert not any(secret in output for secret in ("hunter2", "s3cr", "keypass"))


def test_launch_line_mask_covers_the_submitit_launcher(caplog):
    SweepProgress().on_multirun_start(OmegaConf.create({"dry_run": True}))
    caplog.set_level(logging.INFO)
    launcher = logging.getLogger("hydra_plugins.hydra_submitit_launcher.submitit_launcher")
    launcher.info("\t#%d : %s", 0, "memory.store=postgresql://spark:hunter2@db/mem seed=0")
    assert caplog.records[-1].getMessage() == "\t#0 : memory.store=postgresql://spark:***@db/mem seed=0"
    SweepProgress().on_multirun_start(OmegaConf.create({"dry_run": True}))  # a second sweep adds no second mask
    assert sum(isinstance(f, DatabaseUrlMask) for f in launcher.filters) == 1
