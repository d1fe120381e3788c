"""Faults between the harness and a real server: a proxy (tests/fakes/fault_proxy.py) in front of llama-server
(SmolLM2-135M) answers chosen attempts with 429 (with Retry-After), 500, 503, a reset connection, a stall past the
client's timeout, 400 or 404, or goes away (stops listening), and passes the others on.

Through the shipped configs of both SDKs (gpt4o: OpenAI's, claude_haiku_4_5: Anthropic's), as a run builds them:
transient faults are retried, waiting what `Retry-After` asks (up to a minute), every attempt counted and the one
reply charged; client errors fail at once, in one line naming the status (a 404 stops the run: no call to that model
can succeed); nothing listening fails at once, in one line naming the address. A run of `python -m spark_eval`
through the proxy keeps every record once with its true attempt count; a run whose server goes away stops in one line
and its resume writes the rest, each once. The waits between attempts are read off `asyncio.sleep` (the event loop's
one way to wait) and not waited; no test asserts on the clock.
"""
import asyncio
import json
import os
import subprocess
import sys

import pytest

from spark_eval.config import PROJECT_ROOT
from spark_eval.data.ds1000 import coder_messages
from spark_eval.models.base import GenerationParams, ModelCallError, ModelUnavailable
from spark_eval.models.ledger import Ledger
from spark_eval.models.pool import ModelPool
from tests.conftest import compose_config
from tests.fakes.fault_proxy import FaultProxy, in_turn, per_attempt, request_key
from tests.integration.conftest import free_port, llama_server_running, smollm_weights

PROVIDERS = {"gpt4o": ("OPENAI_API_KEY", "/v1"), "claude_haiku_4_5": ("ANTHROPIC_API_KEY", "")}
TRANSIENT = ("429:2", "500", "503", "reset", "stall")
ASK = [{"role": "user", "content": "Say yes."}]
TIMEOUT_S = 5.0  # a stalled attempt is given up after this (a real reply of 4 tokens takes far less)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server_running(smollm_weights(), log, "--ctx-size", "8192", "--parallel", "2") as root:
        yield root


@pytest.fixture
def waits(monkeypatch):
    """The waits asked for between attempts, recorded instead of waited."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay, result=None):
        if delay > 0:
            asked.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return asked


def build(name, base, monkeypatch, tmp_path):
    """The shipped config `name` with its base URL at `base` (its SDK's path added), as a run builds it."""
    variable, path = PROVIDERS[name]
    monkeypatch.setenv(variable, "dummy-key")
    cfg = compose_config(f"model={name}", f"model.base_url={base}{path}", f"paths.cache={tmp_path}",
                         f"model.timeout_s={TIMEOUT_S}", "model.max_attempts=5")
    ledger = Ledger()
    return ModelPool(ledger).get(cfg.model), ledger


@pytest.mark.parametrize("fault", TRANSIENT)
@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_transient_fault_is_retried_and_every_attempt_counted(name, fault, server, waits, monkeypatch, tmp_path):
    with FaultProxy(server, per_attempt(fault, fault)) as proxy:
        model, ledger = build(name, proxy.base_url, monkeypatch, tmp_path)
        completion = ask(model)
    attempts = proxy.of(request_key({"messages": ASK}))
    assert [a.fault for a in attempts] == [fault, fault, None] and attempts[-1].status == 200
    assert completion.attempts == 3 and completion.text
    assert len(waits) == 2  # one wait before each retry
    if fault.startswith("429"):
        assert all(w >= 2.0 for w in waits), waits  # Retry-After: 2
    assert ledger.calls == 1 and ledger.attempts == 3  # one reply billed, every attempt counted
    assert ledger.usd == pytest.approx(completion.cost_usd) and completion.cost_usd > 0


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_retry_after_is_honoured_up_to_a_minute(name, server, waits, monkeypatch, tmp_path):
    with FaultProxy(server, in_turn("429:120")) as proxy:
        model, _ = build(name, proxy.base_url, monkeypatch, tmp_path)
        completion = ask(model)
    assert completion.attempts == 2 and len(proxy.log) == 2
    assert waits == [60.0]


@pytest.mark.parametrize("status", ["400", "404"])
@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_client_error_fails_at_once_in_one_line(name, status, server, waits, monkeypatch, tmp_path):
    """400: this request fails (its record's error); 404: no request to this model or URL can succeed, so the run
    stops (ModelUnavailable). Either at once, in one line naming the model, the status and what to check."""
    with FaultProxy(server, in_turn(status)) as proxy:
        model, ledger = build(name, proxy.base_url, monkeypatch, tmp_path)
        with pytest.raises(ModelCallError) as failed:
            ask(model)
    line = str(failed.value)
    assert failed.value.attempts == 1 and len(proxy.log) == 1 and waits == []
    assert "\n" not in line and f"answered {status}" in line and model.name in line, line
    assert isinstance(failed.value, ModelUnavailable) == (status == "404"), line
    assert "check model." in line, line
    assert ledger.calls == 0 and ledger.usd == 0 and ledger.attempts == 1


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_nothing_listening_fails_at_once_in_one_line(name, waits, monkeypatch, tmp_path):
    base = f"http://127.0.0.1:{free_port()}"
    model, _ = build(name, base, monkeypatch, tmp_path)
    with pytest.raises(ModelCallError) as failed:
        ask(model)
    line = str(failed.value)
    assert isinstance(failed.value, ModelUnavailable) and failed.value.attempts == 1 and waits == []
    assert "\n" not in line and f"nothing answers at {base}" in line, line


def ask(model):
    """ASK, on an event loop of its own, the model's SDK client closed before the loop ends."""
    async def closing():
        try:
            return await model.complete(ASK, GenerationParams(max_tokens=4))
        finally:
            await model.aclose()

    return asyncio.run(closing())


RUN_IDS = [291, 292, 293, 294, 295, 296]
RUN_FIRST_FAULTS = ("429:1", "500", "503", "reset", "stall", "500")
RUN_TIMEOUT_S = 20.0
"""The run's timeout: a real DS-1000 prompt takes the one-thread server seconds (a stalled attempt waits this long)."""


def run_faults(path, body, attempt):
    """Each request of the run fails its first attempt with the fault its problem's place picks (one of each kind,
    the stall included) and the second with a 500, then goes through."""
    if attempt >= 2:
        return None
    key = request_key(body)
    order = RUN_FAULTS_BY_KEY.get(key)
    if order is None:
        return None
    return RUN_FIRST_FAULTS[order] if attempt == 0 else "500"


RUN_FAULTS_BY_KEY: dict[str, int] = {}


def spark_eval(*overrides: str) -> subprocess.CompletedProcess:
    """`python -m spark_eval` in this checkout, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "spark_eval", *overrides], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_run_through_faults_keeps_every_record_once(server, problems, grading_python, tmp_path):
    RUN_FAULTS_BY_KEY.clear()
    RUN_FAULTS_BY_KEY.update({request_key({"messages": coder_messages(problems[i], None)}): n
                              for n, i in enumerate(RUN_IDS)})
    with FaultProxy(server, run_faults) as proxy:
        # as many requests in flight as the server has slots: none waits for a slot inside its timeout
        done = spark_eval("model=openai_compatible", f"model.base_url={proxy.base_url}/v1", "model.backoff_s=0.01",
                          f"model.timeout_s={RUN_TIMEOUT_S}", "model.max_attempts=5", "model.params.max_tokens=32",
                          "model.concurrency=2",
                          f"dataset.ids=[{','.join(map(str, RUN_IDS))}]", "judge=none",
                          f"execution.python={grading_python}", "execution.preload=[numpy]",
                          f"paths.results={tmp_path}", "pipeline.progress=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "default").iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in records) == RUN_IDS  # none lost, none twice
    assert all(r.get("error") is None for r in records), [r.get("error") for r in records]
    for r in records:
        key = request_key({"messages": coder_messages(problems[r["problem_id"]], None)})
        tried = proxy.of(key)
        first = RUN_FIRST_FAULTS[RUN_IDS.index(r["problem_id"])]
        # the two faults it was given, then passed on until a reply came (on a busy machine a passed-on attempt may
        # itself run past the timeout: it is one more attempt, counted like the others)
        assert [a.fault for a in tried] == [first, "500"] + [None] * (len(tried) - 2), tried
        assert r["completion"]["attempts"] == len(tried) >= 3 and tried[-1].status == 200
    assert {a.fault for a in proxy.log} >= {"429:1", "500", "503", "reset", "stall", None}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["ledger"]["coder"]["calls"] == len(RUN_IDS)


def test_a_server_stopped_mid_run_stops_it_in_one_line_and_the_resume_loses_nothing(server, grading_python,
                                                                                     tmp_path):
    """The server goes away while the run's third request arrives: that request's connection is reset and nothing
    listens any more. The run stops with one line and exit code 2 (no traceback, no error record); the replies that
    came are kept; the same command with the server back writes the rest, each problem once."""
    arrived = iter(range(1 << 30))
    stop_third = lambda path, body, attempt: "stop" if next(arrived) == 2 else None  # noqa: E731
    with FaultProxy(server, stop_third) as proxy:
        overrides = ("model=openai_compatible", f"model.base_url={proxy.base_url}/v1", "model.backoff_s=0.01",
                     f"model.timeout_s={RUN_TIMEOUT_S}", "model.params.max_tokens=32", "model.concurrency=2",
                     f"dataset.ids=[{','.join(map(str, RUN_IDS))}]", "judge=none", f"execution.python={grading_python}",
                     "execution.preload=[numpy]", f"paths.results={tmp_path}", "pipeline.progress=false")
        stopped = spark_eval(*overrides)
    out = stopped.stdout + stopped.stderr  # the log (Hydra's goes to stdout)
    assert stopped.returncode == 2 and "Traceback" not in out, out[-3000:]
    said = [line for line in out.splitlines() if "nothing answers" in line]
    assert len(said) == 1 and f"nothing answers at {proxy.base_url}/v1 (connection refused)" in said[0], out[-3000:]
    (run_dir,) = (tmp_path / "default").iterdir()
    kept = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(kept) < len(RUN_IDS) and all(r.get("error") is None for r in kept)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    with FaultProxy(server, port=proxy.port):  # the server is back, where it was
        resumed = spark_eval(*overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in records) == RUN_IDS  # none lost, none twice
    assert records[: len(kept)] == kept and all(r.get("error") is None for r in records)
