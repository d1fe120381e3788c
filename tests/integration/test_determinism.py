"""The embedded path is reproducible to the bit: a reply does not depend on what the model evaluated before it, so
two Spark runs from empty caches write the same records (timings aside) and reach the same memory state."""
import json

import numpy as np
import pytest
from hydra.utils import instantiate

from spark_eval.memory.agent import plan_messages
from spark_eval.models.local import _blocks, _shared_end
from spark_eval.pipeline import run
from tests.conftest import compose_config

pytest.importorskip("llama_cpp")

TIMINGS = {"latency_s", "duration_s"}
"""Record fields that measure time, the only ones allowed to differ between two runs (at any depth)."""
LONG_SYSTEM = "You review Python data-science code and say what it gets wrong. " * 10
"""Long enough for its KV state to be kept (SYSTEM_STATE_CHARS)."""


def test_blocks_are_a_function_of_the_prompt():
    assert _blocks(1300, 0, 512) == (512, 1024, 1300)
    assert _blocks(1300, 700, 512) == (512, 700, 1212, 1300)
    assert _blocks(300, 144, 512) == (144, 300)
    assert _blocks(300, 300, 512) == (300,)  # a system message that is the whole prompt is no block of its own
    # only whole shared blocks are kept: the prompts share 150 tokens, but their blocks only 144 of them
    assert _shared_end((144, 300), (144, 420), limit=150) == 144
    assert _shared_end((512, 1024, 1300), (512, 1024, 1400), limit=1299) == 1024
    assert _shared_end((512, 700, 900), (512, 1024), limit=1000) == 512
    assert _shared_end((), (512, 1024), limit=1000) == 0


@pytest.fixture(scope="module")
def local_model():
    return instantiate(compose_config("model=local", "model.cache_path=null").model)


def _cold(model, messages) -> np.ndarray:
    llm = model._load()
    llm.n_tokens, model._held_blocks = 0, ()
    model._systems.states.clear()
    model._evaluate(llm, *model._prompt(llm, messages))
    return _logits(llm)


def _logits(llm) -> np.ndarray:
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


@pytest.mark.parametrize("system", ["", LONG_SYSTEM], ids=["shared-prefix", "kept-system-state"])
def test_logits_do_not_depend_on_what_ran_before(local_model, problems, system):
    """A prompt evaluated after another that shares its start (the KV cache holds part of it, or the kept state of
    its system message) gets a cold evaluation's logits, bit for bit. Reusing the shared prefix as it lay (cut
    inside a batch) gave logits up to 0.29 apart here: enough to flip a near tie of a greedy reply."""
    def messages(problem):
        if not system:
            return plan_messages(problem.prompt)
        return [{"role": "system", "content": system}, {"role": "user", "content": problem.prompt}]

    first, other = messages(problems[914]), messages(problems[990])
    llm = local_model._load()
    cold = _cold(local_model, first)
    local_model._evaluate(llm, *local_model._prompt(llm, other))
    local_model._evaluate(llm, *local_model._prompt(llm, first))
    assert llm.n_tokens == len(local_model._prompt(llm, first)[0])
    if system:
        assert local_model._systems.states  # the system message's state was kept, and serves both prompts
    assert np.array_equal(_logits(llm), cold)


def test_a_generated_reply_does_not_depend_on_what_ran_before(local_model, problems, monkeypatch):
    """Free text too: llama.cpp's chat completion finds the prompt evaluated by blocks and evaluates nothing of it
    again (its own prefix reuse would cut inside a batch)."""
    first = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": problems[914].prompt}]
    other = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": problems[990].prompt}]
    params = local_model.default_params(max_tokens=24)
    llm = local_model._load()
    _cold(local_model, other)
    cold = local_model._generate(first, params)
    local_model._generate(other, params)
    evaluated = []
    evaluate = llm.eval
    monkeypatch.setattr(llm, "eval", lambda tokens: (evaluated.append(len(tokens)), evaluate(tokens))[1])
    warm = local_model._generate(first, params)
    prompt = len(local_model._prompt(llm, first)[0])
    assert warm.text == cold.text and warm.output_tokens == cold.output_tokens and warm.input_tokens == prompt
    blocks = len(_blocks(prompt, local_model._prompt(llm, first)[1], llm.n_batch)) - 1  # all but the kept one
    assert evaluated[blocks:blocks + 2] == [0, 1]  # then only the generated tokens, one at a time
    assert cold.request_id is None


def _record_without_timings(value):
    if isinstance(value, dict):
        return {k: _record_without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_record_without_timings(v) for v in value]
    return value


def _records(run_dir) -> dict[str, dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return {r["key"]: _record_without_timings(r) for r in map(json.loads, lines)}


@pytest.mark.slow
def test_two_spark_runs_from_empty_caches_write_the_same_records(tmp_path, grading_python):
    """memory=spark on the embedded parts, from empty caches (responses, KB), twice: once a problem at a time, once
    three in flight, so the model's requests interleave differently. The records agree field by field (timings
    aside) and the memory reaches the same state."""
    models = compose_config("model=local").model.weights_dir  # the weights and MiniLM, read where they lie

    def spark_run(name: str, *overrides: str):
        cfg = compose_config(
            "model=local", "memory=spark", "judge=none", "dataset.ids=[291,292,293]", "pipeline.round_size=2",
            f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
            "memory.kb.libraries=[Numpy]", "memory.kb.max_chunks=150", f"paths.cache={tmp_path / name / 'cache'}",
            *(f"{node}.weights_dir={models}" for node in ("model", "agent", "learner")),
            f"memory.embedder.model_dir={models}", *overrides,
        )
        summary = run(cfg, run_dir=tmp_path / name / "run")
        assert summary["n"] == 3 and summary["errors"] == 0
        return tmp_path / name / "run"

    one = spark_run("one", "pipeline.concurrency=1")
    three = spark_run("three", "pipeline.concurrency=3")
    first, second = _records(one), _records(three)
    assert sorted(first) == sorted(second)
    for key in first:
        for field in first[key]:
            assert first[key][field] == second[key][field], (key, field)
    assert any(r["recommendation"]["text"] for r in first.values())  # the memory advised: the agent's calls ran
    assert not any(r["completion"]["cached"] or r["recommendation"]["trace"]["usage"]["cached"]
                   for r in first.values())  # and none came from a cache
    states = [json.loads((d / "memory" / "final" / "state.json").read_text()) for d in (one, three)]
    assert states[0]["hash"] == states[1]["hash"] and states[0]["counts"]["insight"] == states[1]["counts"]["insight"]
    manifests = [json.loads((d / "manifest.json").read_text())["memory"] for d in (one, three)]
    assert manifests[0]["state_hash"] == manifests[1]["state_hash"]
