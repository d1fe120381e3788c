"""Retries (models/retry.py) through each provider's SDK and its own transport, against a local scripted server:
what is tried again and how long it waits (the waits are recorded, not slept), what fails at once in one line,
what stops a run, and every billed attempt charged."""
import asyncio
import email.utils
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hydra.utils import instantiate

from spark_eval.config import PROJECT_ROOT
from spark_eval.memory.embed import OpenAIEmbedder
from spark_eval.memory.none import NoMemory
from spark_eval.models.base import GenerationParams, ModelCallError, ModelUnavailable
from spark_eval.models.ledger import Ledger
from spark_eval.pipeline.rejudge import judge_run
from spark_eval.pipeline.solve import Condition, solve
from tests.conftest import compose_config
from tests.fakes.ports import free_port
from tests.fakes.scripted_server import RESET, ScriptedServer
from tests.unit.test_costs import chat, messages_reply
from tests.unit.test_judges import GOOD_QUALITY, make_run

MESSAGES = [{"role": "user", "content": "solve it"}]
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
ERROR = {"error": {"message": "try later", "type": "server_error"}}


def compatible(url, *overrides):
    """`model=openai_compatible` sent to `url`, priced $2 in / $8 out per million, its waits recorded in `.waits`."""
    cfg = compose_config("model=openai_compatible", f"model.base_url={url}", "model.cache_path=null",
                         "model.price.input=2", "model.price.output=8", *overrides)
    return recording(instantiate(cfg.model))


def recording(model):
    model.ledger, model.waits = Ledger(), []

    async def sleep(seconds):
        model.waits.append(seconds)

    model.retries.sleep = sleep
    return model


def ask(model, params=GenerationParams(), times=1):
    async def calls():
        try:
            return [await model.complete(MESSAGES, params) for _ in range(times)]
        finally:
            await model.aclose()

    found = asyncio.run(calls())
    return found[0] if times == 1 else found


def test_retry_after_is_honoured_in_each_form_and_capped():
    in_30_s = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    with ScriptedServer((429, ERROR, {"Retry-After": "7"}), (503, ERROR, {"retry-after-ms": "1500"}),
                        (500, ERROR, {"Retry-After": in_30_s}), (429, ERROR, {"Retry-After": "3600"}),
                        (200, chat(USAGE))) as server:
        model = compatible(f"{server.url}/v1", "model.max_attempts=5")
        completion = ask(model)
    # the date is in whole seconds: up to one is lost to its rounding, and some to getting there
    assert model.waits[:2] == [7.0, 1.5] and 20.0 <= model.waits[2] <= 30.0 and model.waits[3] == 60.0
    assert completion.attempts == 5 and len(server.requests) == 5
    # only the reply that came was billed: 100 x 2 + 20 x 8 = 360 per million
    assert completion.cost_usd == pytest.approx(0.00036) and model.ledger.usd == pytest.approx(0.00036)
    assert (model.ledger.calls, model.ledger.attempts) == (1, 5)


def test_anthropic_retry_after_is_honoured(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    usage = {"input_tokens": 10, "output_tokens": 2}
    with ScriptedServer((529, overloaded, {"retry-after": "2"}), (200, messages_reply(usage))) as server:
        cfg = compose_config("model=claude_haiku_4_5", f"model.base_url={server.url}", "model.cache_path=null")
        model = recording(instantiate(cfg.model))
        completion = ask(model)
    assert model.waits == [2.0] and completion.attempts == 2 and model.ledger.attempts == 2


def test_without_retry_after_the_wait_backs_off_with_jitter():
    with ScriptedServer((500, ERROR), (502, ERROR), (200, chat(USAGE))) as server:
        model = compatible(f"{server.url}/v1", "model.backoff_s=1")
        assert ask(model).attempts == 3
    assert 1.0 <= model.waits[0] <= 2.0 and 2.0 <= model.waits[1] <= 3.0  # 1 x 2^n + up to 1 of jitter


def test_a_reset_connection_and_a_broken_reply_are_tried_again():
    with ScriptedServer(RESET, (200, b'{"id": "chatcmpl-1", "choi'), (200, chat(USAGE))) as server:
        model = compatible(f"{server.url}/v1")
        completion = ask(model)
    assert completion.attempts == 3 and completion.text == "result = 1" and len(server.requests) == 3


def test_a_request_the_server_refuses_fails_at_once_in_one_line():
    refusal = {"error": {"message": "'response_format.type' must be\n'json_schema'", "type": "invalid_request_error"}}
    with ScriptedServer((400, refusal)) as server:
        model = compatible(f"{server.url}/v1")
        with pytest.raises(ModelCallError) as failed:
            ask(model)
    assert str(failed.value) == (
        f"openai-compatible: the server at {server.url}/v1 answered 400 for model 'default' ('response_format.type' "
        "must be 'json_schema') (after 1 attempt): check model.params, model.max_tokens_field and model.json_mode")
    assert not isinstance(failed.value, ModelUnavailable) and len(server.requests) == 1 and model.waits == []
    assert model.ledger.attempts == 1 and model.ledger.usd == 0


@pytest.mark.parametrize("status, fix", [
    (401, "set model.api_key_env to the variable holding its key"),
    (403, "check that the key may use model.model"),
    (404, "check model.model / model.base_url"),
])
def test_a_key_or_model_the_server_refuses_stops_in_one_line(status, fix):
    with ScriptedServer((status, {"error": {"message": "no", "type": "x"}})) as server:
        model = compatible(f"{server.url}/v1")
        with pytest.raises(ModelUnavailable) as failed:
            ask(model)
    assert str(failed.value).endswith(fix) and "\n" not in str(failed.value) and len(server.requests) == 1


def test_nothing_listening_is_one_line_at_once():
    port = free_port()
    model = compatible(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ModelUnavailable) as failed:
        ask(model)
    assert str(failed.value) == (f"openai-compatible: nothing answers at http://127.0.0.1:{port}/v1 (connection "
                                 "refused): start the server or set model.base_url")
    assert failed.value.attempts == 1 and model.waits == [] and model.ledger.attempts == 1
    embedder = OpenAIEmbedder("text-embedding-test", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None)
    with pytest.raises(ModelUnavailable, match=r"nothing answers at .* start the server or set embedder.base_url"):
        embedder.embed(["a"])


def test_ten_billable_replies_are_charged_as_ten():
    """Five structured calls, each answered first with nothing (billed, unusable: asked again), then with JSON."""
    empty, good = (200, chat(USAGE, text="")), (200, chat(USAGE, text='{"score": 4}'))
    with ScriptedServer(*[empty, good] * 5) as server:
        model = compatible(f"{server.url}/v1")
        completions = ask(model, GenerationParams(json_schema=SCHEMA), times=5)
    assert len(server.requests) == 10 and all(c.text == '{"score": 4}' and c.attempts == 2 for c in completions)
    # each reply: 100 x 2 + 20 x 8 = 360 per million, $0.00036; ten of them: $0.0036
    assert sum(c.cost_usd for c in completions) == pytest.approx(0.0036) and model.ledger.usd == pytest.approx(0.0036)
    assert (model.ledger.calls, model.ledger.attempts) == (5, 10)
    assert all((c.input_tokens, c.output_tokens) == (200, 40) for c in completions)


def test_a_reply_still_unusable_after_every_attempt_is_handed_back_and_charged():
    with ScriptedServer((200, chat(USAGE, text=""))) as server:
        model = compatible(f"{server.url}/v1")
        completion = ask(model, GenerationParams(json_schema=SCHEMA))
    # not an outage: the empty reply is the recorded fact, its three billed attempts 3 x $0.00036
    assert completion.text == "" and completion.attempts == 3 and len(server.requests) == 3
    assert completion.cost_usd == pytest.approx(0.00108) and model.ledger.usd == pytest.approx(0.00108)


class Unreachable:
    name = "coder"

    async def answer(self, problem, recommendation, repeat=0):
        raise ModelUnavailable("coder: nothing answers at http://127.0.0.1:9/v1 (connection refused): start the "
                               "server or set model.base_url")


def test_a_model_no_call_can_reach_stops_the_run_instead_of_an_error_record(problems):
    condition = Condition(benchmark=None, coder=Unreachable(), memory=NoMemory(), sandbox=None, judges=[],
                          judge_repeats=1, seed=0, versions={})
    with pytest.raises(ModelUnavailable):
        asyncio.run(solve(problems[291], condition, 0, 0))


def paper_judge(tmp_path, url, *overrides):
    return compose_config("stage=judge", f"run_dir={tmp_path}", "judge=paper", "pipeline.progress=false",
                          f"judge.models.quality.base_url={url}", "judge.models.quality.cache_path=null", *overrides)


def test_stage_judge_stops_in_one_line_when_its_judge_cannot_be_reached(tmp_path, problems, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    make_run(tmp_path, problems)
    before = (tmp_path / "records.jsonl").read_text()
    with pytest.raises(ModelUnavailable, match="gemini-2.5-pro: nothing answers at"):
        judge_run(paper_judge(tmp_path, f"http://127.0.0.1:{free_port()}/v1"))
    assert (tmp_path / "records.jsonl").read_text() == before
    # the command line says it in one line, without a traceback
    command = [sys.executable, "-m", "spark_eval", "stage=judge", f"run_dir={tmp_path}", "judge=paper",
               "pipeline.progress=false", f"judge.models.quality.base_url=http://127.0.0.1:{free_port()}/v1",
               "judge.models.quality.cache_path=null", f"hydra.run.dir={tmp_path / 'hydra'}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
                            env={**os.environ, "GEMINI_API_KEY": "test", "ANTHROPIC_API_KEY": "test"})
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in out, out
    assert "nothing answers at" in out and "start the server or set model.base_url" in out


def test_stage_judge_keeps_budget_usd_like_a_run(tmp_path, problems, monkeypatch):
    """Each verdict of gemini-2.5-pro costs 1000 x 1.25 + 520 x 10 = 6450 per million, $0.00645; each call first holds
    its worst case (the quality judge's 768 output tokens and its prompt: about $0.009), so a cap of $0.02 lets two
    or three of the five through."""
    monkeypatch.setenv("GEMINI_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    keys = (291, 292, 293, 294, 295)
    make_run(tmp_path, problems, keys=keys)
    usage = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1520}  # 500 of thinking beyond
    with ScriptedServer((200, chat(usage, text=GOOD_QUALITY))) as server:
        judge_run(paper_judge(tmp_path, f"{server.url}/v1", "budget.usd=0.02", "pipeline.concurrency=1"))
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        stopped = manifest["judge_passes"][-1]
        assert stopped["status"] == "budget_exhausted" and 0 < stopped["verdicts_added"] < len(keys)
        assert stopped["verdicts_added"] == len(server.requests)  # no call went out past the cap
        assert manifest["spent_usd"] <= 0.02
        judge_run(paper_judge(tmp_path, f"{server.url}/v1", "budget.usd=1"))  # a higher cap goes on
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["judge_passes"][-1]["status"] == "finished"
    assert sum(p["verdicts_added"] for p in manifest["judge_passes"]) == len(keys) == len(server.requests)
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [len(r["judgments"]) for r in records] == [1] * len(keys)
    assert sum(j["usage"]["cost_usd"] for r in records for j in r["judgments"]) == pytest.approx(5 * 0.00645)
