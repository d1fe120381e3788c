"""What each paid model's calls cost: the usage each provider documents, read through its SDK's own client and
transport from a local server, priced at the shipped configs' list prices, the cost worked out by hand beside each
assertion. The run's ledger is charged the same amounts."""
import asyncio

import numpy as np
import pytest
from hydra.utils import instantiate

from spark_eval.memory.embed import OpenAIEmbedder
from spark_eval.models.base import GenerationParams
from spark_eval.models.ledger import Ledger, price_usd, worst_case
from spark_eval.records import CAPPED, Usage
from tests.conftest import compose_config
from tests.fakes.scripted_server import ScriptedServer

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "solve it"}]
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def shipped(name, url, *overrides):
    """The model the shipped `conf/model/<name>.yaml` configures, sent to `url`, with a ledger of its own."""
    cfg = compose_config(f"model={name}", f"model.base_url={url}", "model.cache_path=null", *overrides)
    model = instantiate(cfg.model)
    model.ledger = Ledger()
    return model


def ask(model, params=GenerationParams()):
    """One call, its client closed while the loop still runs (as the run's pool does)."""
    async def call():
        try:
            return await model.complete(MESSAGES, params)
        finally:
            await model.aclose()

    return asyncio.run(call())


def chat(usage, text="result = 1", finish="stop"):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m", "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}


def test_openai_chat_prices_cached_prompt_tokens_apart(monkeypatch):
    """gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens."""
    usage = {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
             "prompt_tokens_details": {"cached_tokens": 1800, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    with ScriptedServer((200, chat(usage))) as server:
        model = shipped("gpt4o", f"{server.url}/v1", "model.api_key_env=null")
        completion = ask(model)
    # 200 fresh x 2.50 + 1800 cached x 1.25 + 500 out x 10 = 500 + 2250 + 5000 = 7750 per million = $0.00775
    # (at the full input price it would be 2000 x 2.50 + 5000 = 10000: $0.0100)
    assert completion.cost_usd == pytest.approx(0.00775)
    assert (completion.input_tokens, completion.cached_input_tokens, completion.output_tokens) == (2000, 1800, 500)
    assert model.ledger.usd == pytest.approx(0.00775) and (model.ledger.calls, model.ledger.attempts) == (1, 1)


def test_responses_api_prices_cached_input_and_counts_reasoning_as_output():
    """gpt-5-codex: $1.25 input, $0.125 cached input, $10 output (reasoning included) per million tokens."""
    body = {"id": "resp_1", "object": "response", "created_at": 0, "status": "completed", "model": "gpt-5-codex",
            "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                       {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "df.sum()", "annotations": []}]}],
            "usage": {"input_tokens": 10000, "input_tokens_details": {"cached_tokens": 9000},
                      "output_tokens": 3000, "output_tokens_details": {"reasoning_tokens": 2500},
                      "total_tokens": 13000},
            "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}
    with ScriptedServer((200, body)) as server:
        model = shipped("gpt5_codex", f"{server.url}/v1", "model.api_key_env=null")
        completion = ask(model, model.default_params())
    # 1000 fresh x 1.25 + 9000 cached x 0.125 + 3000 out x 10 = 1250 + 1125 + 30000 = 32375 per million = $0.032375
    # (the input alone at full price: 10000 x 1.25 = 12500 against 2375, 5.3x too high at 90% cached)
    assert completion.cost_usd == pytest.approx(0.032375)
    assert (completion.cached_input_tokens, completion.output_tokens, completion.reasoning_tokens) == (9000, 3000, 2500)
    assert model.ledger.usd == pytest.approx(0.032375)


def messages_reply(usage, content=None, stop_reason="end_turn"):
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_sequence": None,
            "content": content or [{"type": "text", "text": "result = 1"}], "stop_reason": stop_reason,
            "usage": usage}


def test_anthropic_prices_cache_reads_and_writes_apart(monkeypatch):
    """claude-haiku-4.5: $1 input, $0.10 cache hits, $1.25 5-minute cache writes, $5 output per million tokens.
    Its `input_tokens` leaves out the cached and the written tokens."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    usage = {"input_tokens": 50, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 8000,
             "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
             "output_tokens": 400, "service_tier": "standard"}
    with ScriptedServer((200, messages_reply(usage))) as server:
        model = shipped("claude_haiku_4_5", server.url)
        completion = ask(model)
    # 50 fresh x 1 + 8000 read x 0.10 + 2000 written x 1.25 + 400 out x 5 = 50 + 800 + 2500 + 2000 = 5350 per million
    # = $0.00535 (all 10050 prompt tokens at $1: 10050 + 2000 = 12050, $0.01205)
    assert completion.cost_usd == pytest.approx(0.00535)
    counts = (completion.input_tokens, completion.cached_input_tokens, completion.cache_write_tokens)
    assert counts == (10050, 8000, 2000)
    assert model.ledger.usd == pytest.approx(0.00535)


def test_anthropic_max_tokens_is_a_capped_reply(monkeypatch):
    """claude-3.7-sonnet: $3 input, $15 output per million tokens; `stop_reason: max_tokens` counts as capped."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    usage = {"input_tokens": 1200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": 2048}
    with ScriptedServer((200, messages_reply(usage, stop_reason="max_tokens"))) as server:
        completion = ask(shipped("claude_3_7_sonnet", server.url))
    # 1200 x 3 + 2048 x 15 = 3600 + 30720 = 34320 per million = $0.03432
    assert completion.cost_usd == pytest.approx(0.03432)
    assert completion.finish_reason == CAPPED and Usage.of(completion).capped == 1


@pytest.mark.parametrize("details", [{}, {"completion_tokens_details": {"reasoning_tokens": 1200}}])
def test_gemini_thinking_left_out_of_completion_tokens_is_counted_as_output(monkeypatch, details):
    """gemini-2.5-pro (prompts up to 200k tokens): $1.25 input, $10 output, thinking included, per million tokens.
    Its OpenAI-compatible endpoint may count thinking in `total_tokens` only (with or without a reasoning detail)."""
    monkeypatch.setenv("GEMINI_API_KEY", "test")
    usage = {"prompt_tokens": 1500, "completion_tokens": 200, "total_tokens": 2900, **details}
    with ScriptedServer((200, chat(usage))) as server:
        model = shipped("gemini_2_5_pro", f"{server.url}/v1")
        completion = ask(model)
    # output = 200 + (2900 - 1500 - 200) = 1400: 1500 x 1.25 + 1400 x 10 = 1875 + 14000 = 15875 per million
    # = $0.015875 (completion_tokens alone: 1875 + 2000 = 3875, a quarter of it)
    assert completion.cost_usd == pytest.approx(0.015875)
    assert (completion.output_tokens, completion.reasoning_tokens) == (1400, 1200)
    assert model.ledger.usd == pytest.approx(0.015875)


def test_openai_reasoning_inside_completion_tokens_is_not_counted_twice():
    """OpenAI counts reasoning inside `completion_tokens` (total = prompt + completion): nothing is added."""
    usage = {"prompt_tokens": 100, "completion_tokens": 900, "total_tokens": 1000,
             "completion_tokens_details": {"reasoning_tokens": 700}}
    with ScriptedServer((200, chat(usage))) as server:
        completion = ask(shipped("gpt4o", f"{server.url}/v1", "model.api_key_env=null"))
    # 100 x 2.50 + 900 x 10 = 250 + 9000 = 9250 per million = $0.00925
    assert completion.cost_usd == pytest.approx(0.00925)
    assert (completion.output_tokens, completion.reasoning_tokens) == (900, 700)


def test_price_and_worst_case_arithmetic():
    haiku = {"input": 1.0, "cached_input": 0.10, "cache_write": 1.25, "output": 5.0}
    # a part without its own price is billed at the input price: 1000 x 2 + 0 out = 2000 per million
    assert price_usd({"input": 2.0, "output": 8.0}, 1000, 0, cached_input_tokens=600) == pytest.approx(0.002)
    # 400 fresh x 1 + 600 read x 0.10 + 0 = 460 per million
    assert price_usd(haiku, 1000, 0, cached_input_tokens=600) == pytest.approx(0.00046)
    # the worst case takes the prompt at the dearer of input and cache writes: 3000 chars = 1000 tokens x 1.25
    # + 100 out x 5 = 1250 + 500 = 1750 per million
    assert worst_case(3000, 100, haiku, 4096) == pytest.approx(0.00175)


def test_openai_embedder_is_charged_on_the_ledger():
    """text-embedding-3-small: $0.02 per million input tokens, from the shipped `conf/embedder/openai.yaml`."""
    def answer(body):
        data = [{"object": "embedding", "index": i, "embedding": [1.0, 0.0, 0.0]} for i in range(len(body["input"]))]
        return 200, {"object": "list", "model": body["model"], "data": data,
                     "usage": {"prompt_tokens": 50_000, "total_tokens": 50_000}}

    with ScriptedServer(answer) as server:
        cfg = compose_config("memory=spark", "embedder@memory.embedder=openai",
                             f"memory.embedder.base_url={server.url}/v1", "memory.embedder.api_key_env=null",
                             "memory.embedder.batch_size=2").memory.embedder
        embedder = instantiate(cfg)
        assert isinstance(embedder, OpenAIEmbedder)
        embedder.ledger = Ledger()
        vectors = embedder.embed(["a", "bb", "ccc"])
    # two requests of 50,000 tokens x 0.02 = 1000 per million each: $0.001 each, $0.002 in all
    assert vectors.shape == (3, 3) and np.allclose(vectors[:, 0], 1.0)
    assert embedder.ledger.usd == pytest.approx(0.002) and embedder.ledger.calls == 2
    assert [body["input"] for _, body in server.requests] == [["a", "bb"], ["ccc"]]
