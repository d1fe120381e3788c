"""The budget's arithmetic: spend before and now, the running problems' likely cost, sweep-wide spend."""
import json

import pytest

from spark_eval.pipeline.budget import Budget, BudgetError, Ledger, spent_by
from tests.fakes.runs import record
from spark_eval.records import Record


def test_a_problem_starts_only_if_the_running_ones_and_it_would_stay_under_the_cap(tmp_path):
    ledger = Ledger()
    budget = Budget(1.0, "run", tmp_path / "run", before=0.4, run_ledger=ledger)
    assert budget.allows(running=5)  # nothing known of a problem's cost yet
    ledger.charge(0.2)
    ledger.charge(0.1)
    budget.problems_done = 3  # 0.1 a problem
    assert budget.own() == pytest.approx(0.7) and budget.shown() == "$0.70/1"
    assert budget.allows(running=2)  # 0.7 + 3 x 0.1 = 1.0
    assert not budget.allows(running=3)
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
    budget = Budget(2.0, "sweep", tmp_path / "self", before=0.1, run_ledger=Ledger())
    assert budget.spent() == pytest.approx(0.6) and budget.own() == pytest.approx(0.1)
    assert Budget(2.0, "run", tmp_path / "self", 0.1, Ledger()).spent() == pytest.approx(0.1)


def test_earlier_spend_is_the_larger_of_the_manifest_and_the_records():
    records = [Record.from_json(record(i, "m", "none")) for i in range(3)]
    in_records = sum(r.completion.cost_usd for r in records) + sum(j.usage.get("cost_usd", 0)
                                                                   for r in records for j in r.judgments)
    assert in_records > 0 and spent_by(records, {}) == pytest.approx(in_records)
    assert spent_by(records, {"spent_usd": in_records + 1}) == pytest.approx(in_records + 1)
