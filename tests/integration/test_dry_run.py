"""dry_run=true through the real command line: every job of a sweep planned, their total, nothing written."""
from __future__ import annotations

import subprocess
import sys

from spark_eval.config import PROJECT_ROOT


def cli(*args: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "spark_eval", *args], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_a_sweeps_dry_run_plans_each_job_and_the_total_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    code, out = cli("experiment=demo", "dry_run=true", f"paths.results={results}")
    assert code == 0, out
    assert "dry run qwen2.5-coder-0.5b__none__s0" in out and "dry run qwen2.5-coder-0.5b__spark__s0" in out
    assert "dry run total, 2 jobs: 14 records, 14 to run, 0 done" in out
    assert "documentation KB" in out  # the Spark job's needs
    assert not results.exists()  # no run directory, no Hydra folder, no response cache
    assert "sweep " not in out  # no sweep progress: nothing runs

    code, out = cli("stage=report", "dry_run=true", f"paths.results={results}")
    assert code == 2 and "dry_run=true plans stage=run" in out


def test_the_dry_run_plans_the_run_directory_hydra_run_dir_names(tmp_path):
    """`hydra.run.dir=<folder>`: the plan counts that folder's finished records, as the real run would resume."""
    import json

    from spark_eval.config import compose_config
    from spark_eval.pipeline.rundir import result_identity
    from tests.fakes.runs import record

    run_dir, results = tmp_path / "elsewhere", tmp_path / "results"
    overrides = ("experiment=reference", "dataset.ids=[291,292]", f"paths.results={results}")
    run_dir.mkdir()
    (run_dir / "records.jsonl").write_text(json.dumps(record(291, "reference", "none")) + "\n")
    (run_dir / "manifest.json").write_text(json.dumps({"identity": result_identity(compose_config(*overrides))}))
    code, out = cli(*overrides, "dry_run=true", f"hydra.run.dir={run_dir}")
    assert code == 0, out
    assert f"-> {run_dir}: 2 problems, 2 records: 1 to run, 1 done (resumes)" in out
    assert not results.exists() and sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "records.jsonl"]
