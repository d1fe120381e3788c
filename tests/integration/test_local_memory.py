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
    advised = [r["recommendation"] for r in records if r["recommendation"]["text"]]
    assert advised, [r["recommendation"]["error"] for r in records]  # the agent advised, not only tried to
    for rec in advised:  # advice built on real searches
        assert rec["trace"]["queries"] and all(q["hits"] for q in rec["trace"]["queries"])
        assert all(i["id"].startswith(("doc:", "ins:")) for i in rec["items"])
    # and standing on what it was shown: some advice cites a shown item (the 0.5B also cites names it never saw)
    assert any(i["cited"] for rec in advised for i in rec["items"]), [r["trace"]["recommendation_raw"] for r in advised]
    assert all(r["recommendation"]["error"] for r in records if not r["recommendation"]["text"])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["memory"]["kb_chunks"] == {"Numpy": 150}
    assert (manifest["memory"]["kb_embedder"], manifest["memory"]["kb_dense"]) == ("all-MiniLM-L6-v2/max128", "overviews")
    agent = manifest["ledger"]["agent"]
    assert agent["calls"] + agent.get("cached", 0) >= 4  # a plan and advice per problem (replies may be cached)
    health = [json.loads(line) for line in (tmp_path / "run" / "memory" / "health.jsonl").read_text().splitlines()]
    assert [h["round"] for h in health] == [0, 1]  # the learner ran after each round
    # the learner proposed lessons and curation decided on each, visibly: added, or rejected with its reason
    ops = [json.loads(line) for line in (tmp_path / "run" / "memory" / "final" / "ops.jsonl").read_text().splitlines()]
    assert sum(h.get("candidates", 0) for h in health) >= 1, health
    decided = [op for op in ops if op["op"] in ("ADD", "MERGE", "REJECT") and op["item_id"]]
    assert 1 <= len(decided) <= sum(h.get("candidates", 0) for h in health), ops
    assert all(op["detail"].get("reason") for op in decided if op["op"] == "REJECT")
    assert manifest["memory"]["insights"] == sum(1 for op in ops if op["op"] == "ADD")
    assert (tmp_path / "run" / "memory" / "epoch0" / "insights.jsonl").is_file()
