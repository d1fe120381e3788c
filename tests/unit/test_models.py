"""Transport tests: each provider's real SDK, with a transport injected that records requests and replies."""
import asyncio
import json

import httpx2
import pytest

from spark_eval.models.anthropic import AnthropicModel
from spark_eval.models.base import GenerationParams, ModelCallError, ModelConfigError
from spark_eval.config import compose_config
from spark_eval.data import build_benchmark
from spark_eval.data.ds1000 import STOP_SEQUENCES, coder_messages
from spark_eval.models.coder import SAMPLE_SEED_STRIDE, ChatCoder
from spark_eval.models.openai import OpenAIModel
from spark_eval.records import Recommendation

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "solve it"}]


class Transport:
    """Answers with the queued (status, body) pairs in turn and keeps every request body."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def __call__(self, request):
        self.requests.append((request.url.path, json.loads(request.content)))
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx2.Response(status, json=body, headers={"x-request-id": "req-1", "request-id": "req-2"})

    def client(self):
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))


def chat_body(text="result = 1", finish="stop"):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}


def openai_model(transport, tmp_path=None, **kwargs):
    defaults = dict(name="m", model="gpt-test", api_key_env=None, backoff_s=0.001, price={"input": 2.0, "output": 8.0},
                    http_client=transport.client(), cache_path=str(tmp_path / "cache.sqlite") if tmp_path else None)
    return OpenAIModel(**{**defaults, **kwargs})


def test_openai_chat_request_and_reply():
    transport = Transport((200, chat_body()))
    model = openai_model(transport)
    params = GenerationParams(temperature=0.0, max_tokens=50, stop=("w", "x", "y", "z", " = "), seed=7,
                              json_schema=SCHEMA)
    completion = asyncio.run(model.complete(MESSAGES, params))
    path, sent = transport.requests[0]
    assert path.endswith("/chat/completions")
    assert sent["model"] == "gpt-test" and sent["messages"] == MESSAGES and sent["max_tokens"] == 50
    assert sent["stop"] == ["w", "x", "y", "z"] and sent["seed"] == 7 and sent["temperature"] == 0.0
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    # the API takes four stop sequences: the fifth is applied here, to "result = 1"
    assert (completion.text, completion.finish_reason, completion.request_id) == ("result", "stop", "req-1")
    assert (completion.input_tokens, completion.output_tokens, completion.attempts) == (100, 20, 1)
    assert completion.cost_usd == pytest.approx((100 * 2.0 + 20 * 8.0) / 1e6)


def test_openai_responses_api_for_codex_models():
    body = {"id": "resp_1", "object": "response", "created_at": 0, "status": "incomplete", "model": "gpt-5-codex",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "df.sum()", "annotations": []}]}],
            "usage": {"input_tokens": 30, "output_tokens": 9, "total_tokens": 39,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 4}},
            "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}
    transport = Transport((200, body))
    model = openai_model(transport, api="responses", max_tokens_field="max_completion_tokens")
    params = GenerationParams(temperature=None, max_tokens=64, reasoning_effort="high", json_schema=SCHEMA,
                              stop=STOP_SEQUENCES)
    completion = asyncio.run(model.complete(MESSAGES, params))
    path, sent = transport.requests[0]
    assert path.endswith("/responses")
    assert sent["instructions"] == "be brief"
    assert sent["input"] == [{"type": "message", "role": "user", "content": "solve it"}]
    assert sent["max_output_tokens"] == 64 and sent["reasoning"] == {"effort": "high"}
    assert sent["text"]["format"]["schema"] == SCHEMA
    assert "temperature" not in sent and "stop" not in sent
    assert (completion.text, completion.finish_reason) == ("df.sum()", "length")
    assert (completion.input_tokens, completion.output_tokens) == (30, 9)


def test_a_responses_reply_that_reached_its_cap_is_cut_though_it_says_completed():
    """llama-server's Responses API says `completed` of a reply cut at max_output_tokens."""
    body = {"id": "resp_2", "object": "response", "created_at": 0, "status": "completed", "model": "m",
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "1, 2, 3", "annotations": []}]}],
            "usage": {"input_tokens": 30, "output_tokens": 8, "total_tokens": 38,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
            "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}
    model = openai_model(Transport((200, body)), api="responses")
    assert asyncio.run(model.complete(MESSAGES, GenerationParams(max_tokens=8))).finish_reason == "length"
    assert asyncio.run(model.complete(MESSAGES, GenerationParams(max_tokens=9))).finish_reason == "completed"


def anthropic_model(transport, **kwargs):
    return AnthropicModel(name="claude", model="claude-test", http_client=transport.client(), backoff_s=0.001, **kwargs)


def test_anthropic_messages_request_and_tool_forced_json(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "tool_use", "id": "tu_1", "name": "reply", "input": {"score": 4}}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 5}}
    transport = Transport((200, body))
    completion = asyncio.run(anthropic_model(transport).complete(
        MESSAGES, GenerationParams(temperature=0.0, max_tokens=99, stop=("</code>",), json_schema=SCHEMA)))
    path, sent = transport.requests[0]
    assert path.endswith("/v1/messages")
    assert sent["system"] == "be brief" and sent["messages"] == [{"role": "user", "content": "solve it"}]
    assert sent["max_tokens"] == 99 and sent["stop_sequences"] == ["</code>"] and sent["temperature"] == 0.0
    assert sent["tools"][0]["input_schema"] == SCHEMA and sent["tool_choice"] == {"type": "tool", "name": "reply"}
    assert json.loads(completion.text) == {"score": 4}
    assert (completion.input_tokens, completion.output_tokens, completion.request_id) == (12, 5, "req-2")


def test_anthropic_text_reply(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    body = {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "result = "}, {"type": "text", "text": "2"}],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}}
    completion = asyncio.run(anthropic_model(Transport((200, body))).complete(MESSAGES, GenerationParams()))
    assert (completion.text, completion.finish_reason) == ("result = 2", "end_turn")


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ModelConfigError, match="set the environment variable ANTHROPIC_API_KEY"):
        AnthropicModel(name="claude", model="claude-test")


def test_rate_limits_and_server_errors_are_retried_and_counted():
    transport = Transport((429, {"error": {"message": "slow down"}}), (500, {"error": {"message": "oops"}}),
                          (200, chat_body("ok")))
    completion = asyncio.run(openai_model(transport).complete(MESSAGES, GenerationParams()))
    assert (completion.text, completion.attempts, len(transport.requests)) == ("ok", 3, 3)


def test_client_errors_are_not_retried_and_a_final_failure_raises():
    transport = Transport((400, {"error": {"message": "bad request"}}))
    with pytest.raises(ModelCallError, match=r"answered 400 for model 'gpt-test' \(bad request\) \(after 1 attempt\): "
                                             "check model.params"):
        asyncio.run(openai_model(transport).complete(MESSAGES, GenerationParams()))
    transport = Transport((503, {"error": {"message": "down"}}))
    with pytest.raises(ModelCallError, match="after 3 attempts") as err:
        asyncio.run(openai_model(transport, max_attempts=3).complete(MESSAGES, GenerationParams()))
    assert err.value.attempts == 3 and len(transport.requests) == 3


def test_cache_answers_repeated_requests_without_calling(tmp_path):
    transport = Transport((200, chat_body("cached answer")))
    first = asyncio.run(openai_model(transport, tmp_path).complete(MESSAGES, GenerationParams()))
    again = asyncio.run(openai_model(transport, tmp_path).complete(MESSAGES, GenerationParams()))
    assert len(transport.requests) == 1
    assert (first.cached, again.cached, again.text, again.input_tokens) == (False, True, "cached answer", 100)
    asyncio.run(openai_model(transport, tmp_path).complete(MESSAGES, GenerationParams(repeat=1)))
    asyncio.run(openai_model(transport, tmp_path, model="other").complete(MESSAGES, GenerationParams()))
    assert len(transport.requests) == 3


def test_coder_conversation_carries_prompt_recommendation_and_stops(problems):
    problem = problems[291]
    messages = coder_messages(problem, None)
    assert messages[0]["role"] == "system" and messages[1] == {"role": "user", "content": problem.prompt}
    with_advice = coder_messages(problem, Recommendation(text="use np.shape"))[1]["content"]
    assert with_advice.startswith(problem.prompt) and "use np.shape" in with_advice
    transport = Transport((200, chat_body("result = a.shape")))
    coder = ChatCoder(openai_model(transport, params={"max_tokens": 300}), build_benchmark(compose_config().dataset), seed=3)
    completion = asyncio.run(coder.answer(problem, None, repeat=2))
    sent = transport.requests[0][1]
    assert sent["stop"] == list(STOP_SEQUENCES) and sent["max_tokens"] == 300
    assert sent["seed"] == 3 + 2 * SAMPLE_SEED_STRIDE  # sample 2 of the run with seed 3: a seed of its own
    assert completion.text == "result = a.shape"


def test_transport_errors_of_the_aiohttp_client_are_retried_a_wrong_url_is_not():
    import aiohttp
    import openai

    from spark_eval.models.retry import Endpoint, Failure, judge

    where = Endpoint("m", "http://127.0.0.1:8000/v1", "gpt-test")
    assert judge(aiohttp.ClientPayloadError("response payload is not completed"), where, openai).failure is Failure.TRANSIENT
    assert judge(aiohttp.ServerDisconnectedError(), where, openai).failure is Failure.TRANSIENT
    assert judge(ConnectionResetError(104, "reset by peer"), where, openai).failure is Failure.TRANSIENT
    assert judge(aiohttp.InvalidURL("htp:/nowhere"), where, openai).failure is Failure.UNAVAILABLE
    assert judge(ValueError("a bug of ours"), where, openai).failure is Failure.FINAL


def test_weights_of_your_own_count_by_their_content_hashed_once(tmp_path):
    """`model.weights.path`: the file's own sha256 keys the replies (not the configured one), hashed once and kept
    in the weights cache by size and mtime; a file that contradicts a configured sha256 is refused."""
    import hashlib
    import os

    from spark_eval.models.weights import weights_sha256

    mine, other, cache = tmp_path / "mine.gguf", tmp_path / "other.gguf", tmp_path / "cache"
    mine.write_bytes(b"GGUF one")
    other.write_bytes(b"GGUF two")
    configured = {**compose_config("model=local").model.weights}
    digest = weights_sha256({**configured, "path": str(mine), "sha256": None}, cache)
    assert digest == hashlib.sha256(b"GGUF one").hexdigest() != configured["sha256"]
    assert weights_sha256({**configured, "path": str(other), "sha256": None}, cache) != digest
    assert weights_sha256(configured, cache) == configured["sha256"]  # resolve_weights checks that file against it
    (stamp,) = (cache / "digests").glob("mine.gguf-*.sha256")
    size, mtime, _ = stamp.read_text().split()
    stamp.write_text(f"{size} {mtime} {'f' * 64}\n")  # trusted while size and mtime hold: not hashed again
    assert weights_sha256({**configured, "path": str(mine), "sha256": None}, cache) == "f" * 64
    os.utime(mine, ns=(int(mtime) + 10**9, int(mtime) + 10**9))  # touched: hashed again
    assert weights_sha256({**configured, "path": str(mine), "sha256": None}, cache) == digest
    assert weights_sha256({**configured, "path": str(mine), "sha256": digest}, cache) == digest
    with pytest.raises(ModelConfigError, match=r"holds weights with sha256 .* set model.weights.sha256=null"):
        weights_sha256({**configured, "path": str(mine)}, cache)


def test_local_models_on_other_weights_never_share_a_cache_key(tmp_path):
    """Two LocalModels differing only in the weights file they load ask under different keys, and their run
    identities differ by the weights' content, so neither replays the other's answers."""
    pytest.importorskip("llama_cpp")
    from hydra.utils import instantiate

    from spark_eval.pipeline.rundir import identity_changes, result_identity

    files = [tmp_path / "a.gguf", tmp_path / "b.gguf"]
    for number, path in enumerate(files):
        path.write_bytes(b"GGUF %d" % number)
    configs = [compose_config("model=local", f"paths.cache={tmp_path / 'cache'}", f"model.weights.path={path}",
                              "model.weights.sha256=null") for path in files]
    default = instantiate(compose_config("model=local", f"paths.cache={tmp_path / 'cache'}").model, cache_path=None)
    models = [instantiate(cfg.model, cache_path=None) for cfg in configs]
    params = models[0].default_params()
    keys = {m.request_key(MESSAGES, params) for m in [default, *models]}
    assert len(keys) == 3
    assert list(identity_changes(result_identity(configs[0]), result_identity(configs[1]))) == ["model.weights.sha256"]
    with pytest.raises(Exception, match="set model.weights.sha256=null") as refused:  # hydra wraps it
        instantiate(compose_config("model=local", f"paths.cache={tmp_path / 'cache'}",
                                   f"model.weights.path={files[0]}").model, cache_path=None)
    assert isinstance(refused.value.__cause__, ModelConfigError)
