"""budget.usd against an OpenAI-compatible server that charges: the run stops before the cap, keeps every finished
record, says `budget_exhausted`, and a resume with a higher cap finishes; a cap below the spend stops at once."""
import json

import pytest

from spark_eval.data.ds1000 import coder_messages
from spark_eval.models.ledger import worst_case
from spark_eval.pipeline import run
from spark_eval.pipeline.budget import BudgetError
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
