"""budget.usd against an OpenAI-compatible server that charges: the run stops before the cap, keeps every finished
record, says `budget_exhausted`, and a resume with a higher cap finishes; a cap below the spend stops at once;
processes started together share a sweep's cap; a cap reached while learning is a budget stop."""
import asyncio
import json
import multiprocessing
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from spark_eval.data.ds1000 import coder_messages
from spark_eval.models.base import GenerationParams
from spark_eval.models.ledger import BudgetExhausted, Ledger, worst_case
from spark_eval.models.openai import OpenAIModel
from spark_eval.pipeline import run
from spark_eval.pipeline.budget import Budget, BudgetError
from tests.conftest import compose_config
from tests.fakes.openai_server import FakeOpenAIServer

IDS = [291, 292, 293, 294, 295, 296, 297, 298]


def priced_cfg(server, grading_python, *overrides):
    # about 150 prompt words a problem at 1,000 USD per million tokens: some 0.15 USD a call
    return compose_config(
        "model=openai_compatible", f"model.base_url={server.base_url}", "model.params.max_tokens=16",
        "model.price.input=1000",
        "model.price.output=1000", "model.cache_path=null", f"dataset.ids=[{','.join(map(str, IDS))}]",
        f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
        *overrides)  # problems in flight: the model's concurrency (8)


def read(run_dir):
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return records, json.loads((run_dir / "manifest.json").read_text())


def test_budget_stops_keeps_records_and_a_higher_cap_resumes(tmp_path, grading_python, problems):
    run_dir = tmp_path / "exp" / "run"
    with FakeOpenAIServer(reply=lambda body: "result = a.shape") as server:
        run(priced_cfg(server, grading_python, "budget.usd=0.5"), run_dir=run_dir)
        records, manifest = read(run_dir)
        costs = [r["completion"]["cost_usd"] for r in records]
        assert manifest["status"] == "budget_exhausted" and manifest["budget_usd"] == 0.5
        assert 0 < len(records) < len(IDS) and not any(r["error"] for r in records)
        assert manifest["spent_usd"] == pytest.approx(sum(costs)) and sum(costs) <= 0.5
        # it stopped only when a call's worst case (the prompt at 3 characters a token, 16 tokens out) no longer fit
        worst = max(worst_case(sum(len(m["content"]) for m in coder_messages(problems[i], None)), 16,
                               {"input": 1000, "output": 1000}, 0) for i in IDS)
        assert 0.5 - sum(costs) < worst
        assert server.calls == len(records)  # no call was made past the cap

        with pytest.raises(BudgetError, match=r"budget.usd=0.1 is below the \$0\.\d\d this run has already spent"):
            run(priced_cfg(server, grading_python, "budget.usd=0.1"), run_dir=run_dir)
        assert read(run_dir) == (records, manifest)  # nothing written

        run(priced_cfg(server, grading_python, "budget.usd=100"), run_dir=run_dir)
        resumed, manifest = read(run_dir)
        assert manifest["status"] == "finished" and resumed[: len(records)] == records
        assert sorted(r["problem_id"] for r in resumed) == IDS
        assert manifest["spent_usd"] == pytest.approx(sum(r["completion"]["cost_usd"] for r in resumed))

        # scope=sweep: the experiment folder's runs together; this one has spent nothing yet, its sibling has
        with pytest.raises(BudgetError, match="this experiment's runs have already spent"):
            run(priced_cfg(server, grading_python, "budget.usd=0.5", "budget.scope=sweep", "seed=1"),
                run_dir=tmp_path / "exp" / "other")


PRICE = {"input": 100.0, "output": 100.0}
PROMPT = "alpha " * 60  # 60 tokens at the fake server, 120 by the worst case (3 characters a token)
MAX_TOKENS = 20


def reply_of(body):
    """5 to 19 words, varying with the request, so calls settle below their worst case by different amounts."""
    return " ".join(["word"] * (5 + len(body["messages"][0]["content"]) % 15))


def spend_until_refused(base_url, run_dir, start, spent):
    """One job of a sweep: its run directory's manifest, its Budget under the shared cap, then paid calls four at a
    time from when all four are ready until the budget refuses one (the real model's reserve and settle, against the
    fake server)."""
    run_dir = Path(run_dir)
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running"}))
    ledger = Ledger()
    Budget(0.5, "sweep", run_dir, before=0.0, run_ledger=ledger)
    model = OpenAIModel(name="priced", model="fake", base_url=base_url, api_key_env=None, concurrency=4,
                        cache_path=None, price=PRICE, max_attempts=1)
    model.ledger = ledger

    async def calls():
        async def caller(lane):
            for i in range(1000):
                try:
                    await model.complete([{"role": "user", "content": f"{PROMPT}{run_dir.name} {lane} {i}"}],
                                         GenerationParams(max_tokens=MAX_TOKENS))
                except BudgetExhausted:
                    return

        await asyncio.gather(*(caller(lane) for lane in range(4)))
        await model.aclose()

    start.wait()  # all four at once
    asyncio.run(calls())
    spent.put((ledger.usd, ledger.calls))


def test_four_processes_started_together_stay_under_a_sweep_cap_and_near_it(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, spent = context.Barrier(4), context.Queue()
    with FakeOpenAIServer(reply=reply_of, latency_s=0.02) as server:
        jobs = [context.Process(target=spend_until_refused, args=(server.base_url, tmp_path / f"job{i}", start, spent))
                for i in range(4)]
        for job in jobs:
            job.start()
        results = [spent.get(timeout=300) for _ in jobs]
        for job in jobs:
            job.join(60)
    total = sum(usd for usd, _ in results)
    worst = worst_case(len(PROMPT) + 20, MAX_TOKENS, PRICE, 0)  # the longest prompt's
    print(f"4 processes: ${total:.4f} of a $0.5 cap in {sum(n for _, n in results)} calls {results}")
    assert all(job.exitcode == 0 for job in jobs) and all(n > 0 for _, n in results)  # each one spent
    assert server.calls == sum(n for _, n in results)
    assert 0.5 - worst < total <= 0.5  # stopped only when no call's worst case fitted any more


def learning_cfg(grading_python, server, *overrides):
    """Reference answers (free) and a learner that charges: its worst case (about 6,000 prompt characters and 512
    tokens at 1,000 USD per million) passes a 1 USD cap."""
    from tests.integration.test_memory_runs import memory_cfg

    cfg = memory_cfg(grading_python, *overrides)
    learner = compose_config("model=openai_compatible", f"model.base_url={server.base_url}", "model.cache_path=null",
                             "model.price.input=1000", "model.price.output=1000").model
    with open_dict(cfg):
        cfg.memory.learner_model = OmegaConf.create(OmegaConf.to_container(learner))
    return cfg


def test_a_cap_reached_while_learning_is_a_budget_stop_not_a_learner_failure(tmp_path, grading_python):
    from tests.integration.test_memory_runs import LEARNER_REPLY, lines

    with FakeOpenAIServer(reply=lambda body: LEARNER_REPLY) as server:
        run(learning_cfg(grading_python, server, "budget.usd=1"), run_dir=tmp_path)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert manifest["status"] == "budget_exhausted" and server.calls == 0
        assert len(lines(tmp_path / "records.jsonl")) == 2  # round 0, written before the learner was refused
        assert manifest["memory"]["learner_failures"] == 0
        assert not (tmp_path / "memory" / "health.jsonl").exists()
        run(learning_cfg(grading_python, server, "budget.usd=100"), run_dir=tmp_path)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        health = lines(tmp_path / "memory" / "health.jsonl")
        assert manifest["status"] == "finished" and [h["round"] for h in health] == [0, 1] and server.calls == 2
