"""All 1000 reference solutions in the pinned environment: 999 pass; 819 needs the network."""
import pytest

from spark_eval.pipeline import run
from tests.conftest import compose_config


@pytest.mark.slow
def test_all_reference_solutions(tmp_path, grading_python):
    cfg = compose_config("experiment=reference", f"execution.python={grading_python}", "pipeline.progress=false")
    summary = run(cfg, run_dir=tmp_path)
    assert summary["n"] == 1000
    assert summary["statuses"]["infra_error"] == 1
    assert summary["passed"] == 999, summary["by_library"]
