"""The budget's arithmetic: spend before and now, the running problems' likely cost, sweep-wide spend."""
import asyncio
import json

import pytest

from spark_eval.models.ledger import BudgetExhausted, Ledger, worst_case
from spark_eval.pipeline.budget import Budget, BudgetError, spent_by
from tests.fakes.runs import record
from spark_eval.records import Record


def test_a_problem_starts_only_if_the_running_ones_and_it_would_stay_under_the_cap(tmp_path):
    ledger = Ledger()
    budget = Budget(1.0, "run", tmp_path / "run", before=0.0, run_ledger=ledger)
    assert budget.allows(running=0) and not budget.allows(running=1)  # no cost known yet: one at a time
    asyncio.run(ledger.settle(0.0, 0.125))
    asyncio.run(ledger.settle(0.0, 0.125))
    budget.problems_done = 2  # 0.125 a problem
    assert budget.own() == 0.25 and budget.shown() == "$0.25/1"
    assert budget.allows(running=5)  # 0.25 + 6 x 0.125 = 1.0
    assert not budget.allows(running=6)
    # a resume knows its earlier attempts' cost per problem from the start
    resumed = Budget(1.0, "run", tmp_path / "run", before=0.5, run_ledger=Ledger(), finished_before=2)
    assert resumed.allows(running=1) and not resumed.allows(running=2)  # 0.5 + 2 x 0.25 = 1.0
    assert Budget(None, "run", tmp_path, 5.0, ledger).allows(running=100)


def test_bad_settings_and_a_cap_below_the_spend_are_one_line(tmp_path):
    with pytest.raises(BudgetError, match="budget.scope=team is unknown"):
        Budget(1.0, "team", tmp_path, 0.0, Ledger())
    with pytest.raises(BudgetError, match=r"budget.usd=0.5 is below the \$0.75 this run has already spent; "
                                          "give budget.usd above 0.75"):
        Budget(0.5, "run", tmp_path, 0.75, Ledger())


def test_sweep_scope_adds_the_other_runs_of_the_experiment_folder(tmp_path):
    for name, spent in (("a", 0.3), ("b", 0.2), ("self", 9.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"spent_usd": spent}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    (tmp_path / "older").mkdir()  # a run from before spent_usd: its records say what it spent
    (tmp_path / "older" / "manifest.json").write_text(json.dumps({"status": "finished"}))
    rows = [record(i, "m", "none") for i in range(4)]
    (tmp_path / "older" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    older = spent_by([Record.from_json(r) for r in rows], {})
    budget = Budget(2.0, "sweep", tmp_path / "self", before=0.1, run_ledger=Ledger())
    assert older > 0 and budget.spent() == pytest.approx(0.6 + older) and budget.own() == pytest.approx(0.1)
    assert Budget(2.0, "run", tmp_path / "self", 0.1, Ledger()).spent() == pytest.approx(0.1)


def test_earlier_spend_is_the_larger_of_the_manifest_and_the_records():
    records = [Record.from_json(record(i, "m", "none")) for i in range(3)]
    in_records = sum(r.completion.cost_usd for r in records) + sum(j.usage.get("cost_usd", 0)
                                                                   for r in records for j in r.judgments)
    assert in_records > 0 and spent_by(records, {}) == pytest.approx(in_records)
    assert spent_by(records, {"spent_usd": in_records + 1}) == pytest.approx(in_records + 1)


def test_a_call_goes_out_only_if_its_worst_case_fits_under_the_cap(tmp_path):
    assert worst_case(3000, 100, {"input": 10.0, "output": 20.0}, 4096) == (1000 * 10.0 + 100 * 20.0) / 1e6
    assert worst_case(0, None, {"output": 1.0}, 4096) == 4096 / 1e6
    ledger = Ledger()
    Budget(1.0, "run", tmp_path / "run", before=0.25, run_ledger=ledger)

    async def calls():
        await ledger.reserve("m", 0.5)  # 0.25 + 0.5 fits
        waiting = asyncio.create_task(ledger.reserve("m", 0.5))  # 0.25 + 1.0 does not: it waits
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await ledger.settle(0.5, 0.125)  # the first cost less than its worst case: 0.375 + 0.5 fits now
        await asyncio.wait_for(waiting, 1)
        assert ledger.reserved == 0.5 and ledger.usd == 0.125
        await ledger.settle(0.5, None)  # failed: nothing charged
        with pytest.raises(BudgetExhausted, match="could take the spend past budget.usd"):
            await ledger.reserve("m", 0.75)  # nothing in flight to wait for: refused

    asyncio.run(calls())
