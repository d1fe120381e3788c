"""memory=spark end to end on the embedded parts: the 0.5B model as coder, agent and learner, MiniLM embeddings,
a documentation KB walked from the grading environment (NumPy, capped so the test stays short)."""
import json

import pytest

from spark_eval.pipeline import run
from tests.conftest import compose_config

pytest.importorskip("llama_cpp")
pytest.importorskip("sentence_transformers")

IDS = [291, 292]  # Numpy, families Numpy/0 and Numpy/1


def test_spark_on_the_embedded_model(tmp_path, grading_python):
    cfg = compose_config(
        "model=local", "memory=spark", "judge=none", f"dataset.ids=[{','.join(map(str, IDS))}]",
        f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
        "pipeline.round_size=1", "memory.kb.libraries=[Numpy]", "memory.kb.max_chunks=150",
        f"memory.kb.cache_dir={tmp_path / 'kb'}", "model.cache_path=null",
    )
    summary = run(cfg, run_dir=tmp_path / "run")
    assert summary["n"] == 2 and summary["errors"] == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    for record in records:
        rec = record["recommendation"]
        # the small model either gave cited advice built on real searches, or the record says why not
        assert rec["text"] or rec["error"]
        if rec["text"]:
            assert rec["trace"]["queries"] and all(q["hits"] for q in rec["trace"]["queries"])
            assert all(i["id"].startswith(("doc:", "ins:")) for i in rec["items"])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["memory"]["kb_chunks"] == {"Numpy": 150}
    assert manifest["ledger"]["agent"]["calls"] >= 2
    health = [json.loads(line) for line in (tmp_path / "run" / "memory" / "health.jsonl").read_text().splitlines()]
    assert [h["round"] for h in health] == [0, 1]  # the learner ran after each round (it may add nothing)
    assert (tmp_path / "run" / "memory" / "epoch0" / "insights.jsonl").is_file()
