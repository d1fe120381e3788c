"""A run against an OpenAI-compatible server that fails on purpose: every record once, attempts counted, cache."""
import json

import pytest

from spark_eval.models.base import ModelUnavailable
from spark_eval.pipeline import run
from tests.conftest import compose_config
from tests.fakes.openai_server import FakeOpenAIServer, message_key
from tests.fakes.ports import free_port
from spark_eval.data.ds1000 import coder_messages

IDS = [291, 292, 293, 294, 295, 296, 297, 298]


def faulty_run_cfg(server, grading_python, cache):
    return compose_config(
        "model=openai_compatible", f"model.base_url={server.base_url}", "model.backoff_s=0.01",
        "model.timeout_s=1.0", "model.max_attempts=5", f"model.cache_path={cache}",
        f"dataset.ids=[{','.join(map(str, IDS))}]", f"execution.python={grading_python}",
        "execution.preload=[numpy]", "pipeline.progress=false",
    )


def test_faulty_server_run_keeps_every_record_once_with_true_attempt_counts(tmp_path, grading_python, problems):
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAIServer(reply=lambda body: "result = a.shape", fault_rate=0.6, slow_s=2.0) as server:
        summary = run(faulty_run_cfg(server, grading_python, cache), run_dir=tmp_path / "run")
        calls_first = server.calls
        records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
        assert sorted(r["problem_id"] for r in records) == IDS and summary["errors"] == 0
        assert set(server.faults) == {"429", "500", "slow", "truncated"}
        for r in records:
            key = message_key(coder_messages(problems[r["problem_id"]], None))
            assert r["completion"]["attempts"] == server.hits[key]
        assert sum(r["completion"]["attempts"] for r in records) == calls_first > len(IDS)
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["ledger"]["coder"]["calls"] == len(IDS)

        again = run(faulty_run_cfg(server, grading_python, cache), run_dir=tmp_path / "rerun")
        assert server.calls == calls_first  # every answer came from the cache
        assert (again["ledger"]["coder"]["calls"], again["ledger"]["coder"]["cached"]) == (0, len(IDS))
        assert again["ledger"]["coder"]["input_tokens"] == 0


def test_a_run_whose_server_is_not_running_stops_in_one_line_without_error_records(tmp_path, grading_python):
    """Nothing listens at model.base_url: the run stops at its first call with one line (no error record per
    problem), its manifest says interrupted, and the same command with the server up makes every record."""
    port = free_port()
    cfg = compose_config(
        "model=openai_compatible", f"model.base_url=http://127.0.0.1:{port}/v1", "model.cache_path=null",
        f"dataset.ids=[{','.join(map(str, IDS))}]", f"execution.python={grading_python}",
        "execution.preload=[numpy]", "pipeline.progress=false",
    )
    with pytest.raises(ModelUnavailable) as stopped:
        run(cfg, run_dir=tmp_path / "run")
    assert str(stopped.value) == (f"openai-compatible: nothing answers at http://127.0.0.1:{port}/v1 (connection "
                                  "refused): start the server or set model.base_url")
    records = tmp_path / "run" / "records.jsonl"
    assert not records.exists() or records.read_text() == ""
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "interrupted"
