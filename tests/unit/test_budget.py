"""The budget's arithmetic and its shared ledger: spend before and now, the running problems' likely cost,
sweep-wide spend, holds of calls in flight across processes, and the holds of a process that died."""
import asyncio
import json
import multiprocessing
import os
import sqlite3
import time

import pytest

from spark_eval.models.ledger import BudgetExhausted, Ledger, worst_case
from spark_eval.pipeline.budget import LEDGER_FILE, STALE_AFTER_S, Budget, BudgetError, spent_by
from spark_eval.records.run import Manifest
from tests.fakes.runs import record
from spark_eval.records import Record


def started(run_dir, **manifest):
    """A run directory as the runner leaves it before its first call: a manifest."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running", **manifest}))
    return run_dir


def spend(ledger, *costs):
    """Calls that each held their cost as worst case and settled at it."""
    async def calls():
        for usd in costs:
            await ledger.reserve("m", usd)
            await ledger.settle(usd, usd)

    asyncio.run(calls())


def test_a_problem_starts_only_if_the_running_ones_and_it_would_stay_under_the_cap(tmp_path):
    ledger = Ledger()
    budget = Budget(1.0, "run", tmp_path / "run", before=0.0, run_ledger=ledger)
    assert budget.allows(running=0) and not budget.allows(running=1)  # no cost known yet: one at a time
    spend(ledger, 0.125, 0.125)
    budget.problems_done = 2  # 0.125 a problem
    assert budget.own() == 0.25 and budget.shown() == "$0.25/1"
    assert budget.allows(running=5)  # 0.25 + 6 x 0.125 = 1.0
    assert not budget.allows(running=6)
    # a resume knows its earlier attempts' cost per problem from the start
    resumed = Budget(1.0, "run", tmp_path / "run", before=0.5, run_ledger=Ledger(), finished_before=2)
    assert resumed.allows(running=1) and not resumed.allows(running=2)  # 0.5 + 2 x 0.25 = 1.0
    assert Budget(None, "run", tmp_path / "free", 5.0, ledger).allows(running=100)


def test_bad_settings_and_a_cap_below_the_spend_are_one_line(tmp_path):
    with pytest.raises(BudgetError, match="budget.scope=team is unknown"):
        Budget(1.0, "team", tmp_path / "run", 0.0, Ledger())
    with pytest.raises(BudgetError, match=r"budget.usd=0.5 is below the \$0.75 this run has already spent; "
                                          "give budget.usd above 0.75"):
        Budget(0.5, "run", tmp_path / "run", 0.75, Ledger())
    (tmp_path / "taken").write_text("a file where the experiment folder should be")
    with pytest.raises(BudgetError, match=f"taken/{LEDGER_FILE}: .*give the runs a folder on a filesystem with working file locks"):
        Budget(0.5, "run", tmp_path / "taken" / "run", 0.0, Ledger())


def test_sweep_scope_adds_the_other_runs_of_the_experiment_folder(tmp_path):
    for name, spent in (("a", 0.3), ("b", 0.2), ("self", 9.0)):
        started(tmp_path / name, spent_usd=spent)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    started(tmp_path / "older", status="finished")  # a run from before spent_usd: its records say what it spent
    rows = [record(i, "m", "none") for i in range(4)]
    (tmp_path / "older" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    older = spent_by([Record.from_json(r) for r in rows], Manifest())
    budget = Budget(2.0, "sweep", tmp_path / "self", before=0.1, run_ledger=Ledger())
    assert older > 0 and budget.spent() == pytest.approx(0.6 + older) and budget.own() == pytest.approx(0.1)
    assert Budget(2.0, "run", tmp_path / "self", 0.1, Ledger()).spent() == pytest.approx(0.1)


def test_earlier_spend_is_the_larger_of_the_manifest_and_the_records():
    records = [Record.from_json(record(i, "m", "none")) for i in range(3)]
    in_records = sum(r.completion.cost_usd for r in records) + sum((j.usage.cost_usd or 0)
                                                                   for r in records for j in r.judgments)
    assert in_records > 0 and spent_by(records, Manifest()) == pytest.approx(in_records)
    assert spent_by(records, Manifest.from_json({"spent_usd": in_records + 1})) == pytest.approx(in_records + 1)


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
        await asyncio.wait_for(waiting, 10)
        assert ledger.reserved == 0.5 and ledger.usd == 0.125
        await ledger.settle(0.5, None)  # failed: nothing charged
        with pytest.raises(BudgetExhausted, match="could take the spend past budget.usd"):
            await ledger.reserve("m", 0.75)  # nothing in flight to wait for: refused

    asyncio.run(calls())


def test_a_resume_counts_the_larger_of_ledger_and_files_never_both(tmp_path):
    run_dir = started(tmp_path / "run")
    ledger = Ledger()
    Budget(1.0, "run", run_dir, before=0.0, run_ledger=ledger)
    spend(ledger, 0.2, 0.1)
    started(run_dir, spent_usd=0.3)  # what the runner writes: the same spend
    assert Budget(1.0, "run", run_dir, before=0.3, run_ledger=Ledger()).own() == pytest.approx(0.3)
    # killed before the manifest caught up: the ledger knows more; stage=judge spent after: the files know more
    assert Budget(1.0, "run", run_dir, before=0.1, run_ledger=Ledger()).own() == pytest.approx(0.3)
    assert Budget(1.0, "run", run_dir, before=0.45, run_ledger=Ledger()).own() == pytest.approx(0.45)
    sibling = Budget(1.0, "sweep", started(tmp_path / "other"), before=0.0, run_ledger=Ledger())
    assert sibling.spent() == pytest.approx(0.45)
    # a run directory deleted (to run it again) takes its spend with it, as its files did
    (run_dir / "manifest.json").unlink()
    assert Budget(1.0, "sweep", tmp_path / "other", before=0.0, run_ledger=Ledger()).spent() == 0


def test_scope_run_counts_its_own_rows_and_sweep_every_run(tmp_path):
    first, second = Ledger(), Ledger()
    Budget(0.5, "run", started(tmp_path / "first"), 0.0, first)
    spend(first, 0.4)
    one = Budget(0.5, "run", started(tmp_path / "second"), 0.0, second)
    spend(second, 0.45)  # its own cap: the first run's 0.4 is not its spend
    assert one.spent() == pytest.approx(0.45)
    with pytest.raises(BudgetError, match=r"below the \$0.85 this experiment's runs have already spent"):
        Budget(0.5, "sweep", started(tmp_path / "third"), 0.0, Ledger())


def hold_and_die(run_dir, held):
    """A process that holds a worst case and is gone before it settles (os._exit: as if killed)."""
    ledger = Ledger()
    Budget(1.0, "sweep", run_dir, 0.0, ledger)
    asyncio.run(ledger.reserve("m", 0.9))
    held.set()
    os._exit(0)


def test_the_holds_of_a_process_that_died_are_released(tmp_path):
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    dead = context.Process(target=hold_and_die, args=(started(tmp_path / "dead"), held))
    dead.start()
    assert held.wait(60)
    dead.join(60)
    ledger = Ledger()
    budget = Budget(1.0, "sweep", started(tmp_path / "alive"), 0.0, ledger)
    # a live process's holds on another host count until it has been silent too long
    with sqlite3.connect(tmp_path / LEDGER_FILE) as db:
        db.executemany("INSERT INTO held VALUES (?, 'elsewhere', 1, 1, ?, ?)",
                       [("recent", 0.3, time.time()), ("silent", 0.5, time.time() - 2 * STALE_AFTER_S)])
    assert budget.shared.hold(0.8) == (False, True)  # the dead 0.9 and the silent 0.5 are gone, the recent 0.3 not
    assert budget.shared.hold(0.7) == (True, True)
    with sqlite3.connect(tmp_path / LEDGER_FILE) as db:
        assert sorted(db.execute("SELECT run, calls FROM held")) == [("alive", 1), ("recent", 1)]
