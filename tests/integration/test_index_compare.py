"""stage=index and stage=compare through the real command line, on synthetic run directories."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

from spark_eval.config import PROJECT_ROOT, ReportConfig
from spark_eval.stats.load import load_run
from spark_eval.stats.versus import compare_runs
from tests.fakes.runs import synthetic_experiment


def cli(*args: str) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, "-m", "spark_eval", *args], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=300)
    return result.returncode, (result.stdout + result.stderr).splitlines()


def test_index_and_compare_from_the_command_line_write_nothing_else_into_results(tmp_path):
    results = tmp_path / "results"
    synthetic_experiment(results / "exp1", ["m"], n=12, experiment="exp1")
    code, lines = cli("stage=index", f"paths.results={results}")
    assert code == 0 and any("3 runs added, 0 updated, 0 unchanged, 0 removed, 0 skipped" in line for line in lines)
    code, lines = cli("stage=index", f"paths.results={results}")
    assert code == 0 and any("0 runs added, 0 updated, 3 unchanged" in line for line in lines)
    with sqlite3.connect(results / "index.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM records").fetchone() == (36,)

    code, lines = cli("stage=compare", f"paths.results={results}", "runs=[exp1/m__none__s0,m__spark__s0]")
    assert code == 0, lines[-5:]
    expected = compare_runs(*(load_run(results / "exp1" / f"m__{memory}__s0") for memory in ("none", "spark")),
                            ReportConfig()).set_index("metric")
    shown = next(line for line in lines if "pass@1: " in line)
    assert f"b - a {expected.loc['pass', 'mean_diff']:+.3f} [95% CI {expected.loc['pass', 'ci_low']:+.3f}, " in shown
    assert f"p = {expected.loc['pass', 'p_value']:.3g} (" in shown
    assert any("common problems: 12 (" in line for line in lines)
    assert any("quality (quality/fake-judge): a " in line for line in lines)
    assert sorted(p.name for p in results.iterdir()) == ["exp1", "index.sqlite"]  # no Hydra folder, no run

    code, lines = cli("stage=compare", f"paths.results={results}", "runs=[exp1/m__none__s0,exp1/nowhere]")
    errors = [line for line in lines if "ERROR" in line]
    assert code == 2 and len(errors) == 1 and "runs: exp1/nowhere is not a run directory" in errors[0]
    assert "give runs=[<run a>,<run b>]" in errors[0]
