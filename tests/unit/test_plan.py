"""dry_run=true: the plan of a run from its config, without a call or a write."""
import json
import sqlite3

import pytest
from hydra.utils import instantiate

from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.models.coder import ChatCoder
from spark_eval.pipeline.plan import plan_run, total_lines
from spark_eval.pipeline.rundir import result_identity
from tests.fakes.runs import record

API = ("model=openai_compatible", "model.price.input=2.0", "model.price.output=8.0")


def config(tmp_path, *overrides):
    return compose_config("dataset.limit=5", f"paths.results={tmp_path / 'results'}", *API, *overrides)


def test_plan_counts_calls_tokens_and_cost_without_writing(tmp_path):
    plan = plan_run(config(tmp_path, "pipeline.samples=2", "model.params.temperature=0.8", "pipeline.epochs=2"))
    assert (plan.problems, plan.records, plan.done, plan.resume) == (5, 20, 0, "new run")
    coder = plan.components["coder"]
    # each sample is its own request; the second epoch repeats the first's, which the cache answers by then
    assert (coder.calls, coder.cached) == (20, 10) and plan.components["agent"].calls == 0
    assert coder.output_tokens == 10 * 300
    assert coder.cost_usd == pytest.approx((coder.input_tokens * 2.0 + coder.output_tokens * 8.0) / 1e6)
    assert coder.api_s > 0  # a remote provider
    assert plan.total.calls == 20 and all("grading environment" in need for need in plan.needs)
    assert not (tmp_path / "results").exists()  # no run directory, no response cache, no Hydra folder


def test_an_in_process_model_counts_compute_hours_at_its_speed(tmp_path):
    """The embedded model has no API time but its measured speed: prompt and output tokens at their own rates."""
    plan = plan_run(compose_config("dataset.limit=5", f"paths.results={tmp_path / 'results'}", "model=local",
                                   "model.cache_path=null", "model.speed.prompt_tok_s=100",
                                   "model.speed.output_tok_s=10"))
    coder = plan.components["coder"]
    assert coder.api_s == 0 and coder.output_tokens == 5 * 300
    assert coder.compute_s == pytest.approx(coder.input_tokens / 100 + coder.output_tokens / 10)
    assert "compute h" in "\n".join(plan.lines())
    without = plan_run(compose_config("dataset.limit=5", f"paths.results={tmp_path / 'results'}", "model=local",
                                      "model.cache_path=null", "model.speed=null"))
    assert without.components["coder"].compute_s == 0


def test_a_gated_memory_counts_the_coders_draft_and_its_scoring(tmp_path):
    """memory=spark_gated drafts without memory, reads the draft's log-probabilities (one pass, nothing generated),
    then (counted as speaking: an upper bound) the agent advises and the coder answers again."""
    def plan(memory):
        return plan_run(compose_config("dataset.limit=5", f"paths.results={tmp_path / 'results'}", "model=local",
                                       "model.cache_path=null", f"memory={memory}", "memory.kb.max_chunks=600"))
    gated, plain = plan("spark_gated"), plan("spark")
    coder, before = gated.components["coder"], plain.components["coder"]
    assert (coder.calls, before.calls) == (15, 5)
    assert coder.output_tokens == before.output_tokens + 5 * 300  # the drafts; the scoring generates nothing
    assert gated.components["agent"].calls == plain.components["agent"].calls == 10


def test_calls_the_response_cache_holds_are_counted_apart(tmp_path):
    cfg = config(tmp_path)
    benchmark = build_benchmark(cfg.dataset)
    model = instantiate(cfg.model, cache_path=None)
    coder = ChatCoder(model, benchmark, cfg.seed)
    problems = benchmark.select()
    cache = tmp_path / "results" / ".cache" / "responses.sqlite"
    cache.parent.mkdir(parents=True)
    with sqlite3.connect(cache) as db:
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for p in problems[:3]:
            db.execute("INSERT INTO responses VALUES (?, '{}')", (model.request_key(*coder.request(p, None, 0)),))
    before = cache.read_bytes()
    plan = plan_run(cfg)
    coder_calls = plan.components["coder"]
    assert (coder_calls.calls, coder_calls.cached) == (5, 3)
    assert coder_calls.output_tokens == 2 * 300  # cached calls cost nothing
    assert cache.read_bytes() == before
    # a second epoch asks the same requests again: answered by the cache once the first has run
    assert plan_run(config(tmp_path, "pipeline.epochs=2")).components["coder"].cached == 3 + 5


def test_resume_counts_finished_records_and_says_when_it_would_be_refused(tmp_path):
    cfg = config(tmp_path)
    run_dir = tmp_path / "results" / "default" / "openai-compatible__none__s0"
    run_dir.mkdir(parents=True)
    ids = [p.problem_id for p in build_benchmark(cfg.dataset).select()]
    rows = [record(ids[0], "openai-compatible", "none"), record(ids[1], "openai-compatible", "none", error="boom")]
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "manifest.json").write_text(json.dumps({"identity": result_identity(cfg)}))
    plan = plan_run(cfg)
    assert (plan.done, plan.resume) == (1, "resumes")  # the errored record is retried
    assert plan.components["coder"].calls == 4
    changed = plan_run(config(tmp_path, "model.params.max_tokens=99"))
    assert changed.resume.startswith("resume refused") and "model.params.max_tokens: 1024 -> 99" in changed.resume


def test_missing_keys_and_the_total_over_jobs(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans = [plan_run(config(tmp_path)), plan_run(config(tmp_path, "model=claude_haiku_4_5"))]
    assert any("ANTHROPIC_API_KEY" in need for need in plans[1].needs)
    lines = total_lines(plans)
    assert lines[0] == "dry run total, 2 jobs: 10 records, 10 to run, 0 done"
    total = next(line for line in lines if line.strip().startswith("total"))
    assert f"{plans[0].total.calls + plans[1].total.calls:,}" in total
