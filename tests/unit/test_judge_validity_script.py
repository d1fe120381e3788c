"""scripts/judge_validity.py: the balanced pool split by origin family, its pairs, and the held-out figures."""
import importlib.util
import json

import pytest

from spark_eval.config import PROJECT_ROOT
from spark_eval.records import read_records
from tests.fakes.runs import record, write_run

SCRIPT = PROJECT_ROOT / "scripts" / "judge_validity.py"


@pytest.fixture
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("judge_validity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # families ("Pandas", 0..3) are the ones the prompt was chosen on
    monkeypatch.setattr(module, "tuned_families", lambda limit: {("Pandas", i) for i in range(4)})
    return module


def _answer(problem_id, model, library, passed, code, score=None):
    row = record(problem_id, model, "none", passed=passed, library=library, scores=[] if score is None else [score])
    return {**row, "code": code}


def _sources(tmp_path):
    """Two coders on problems 0..11 (Pandas 0..5, Numpy 6..11): the small one passes the even problems, the large
    one every problem below 9; both write the same code for problem 0."""
    small = [_answer(p, "small", "Pandas" if p < 6 else "Numpy", p % 2 == 0, "same" if p == 0 else f"small {p}",
                     score=5.0) for p in range(12)]
    large = [_answer(p, "large", "Pandas" if p < 6 else "Numpy", p < 9, "same" if p == 0 else f"large {p}")
             for p in range(12)]
    return [write_run(tmp_path / "small__none__s0", small), write_run(tmp_path / "large__none__s0", large)]


def test_the_pool_balances_passing_and_failing_per_library_and_part(script, tmp_path):
    out = tmp_path / "pool"
    description = script.pool(_sources(tmp_path), out, tuned_limit=70)
    records = read_records(out / "records.jsonl", repair=False)
    assert len({(r.problem_id, r.code) for r in records}) == len(records)  # one copy of the same code per problem
    assert all(r.judgments == () and r.recommendation is None for r in records)
    assert all(r.key.split("/")[0] in ("small__none__s0", "large__none__s0") for r in records)
    for part in ("tuning", "test"):
        for library in ("Pandas", "Numpy"):
            chosen = [r for r in records if r.library == library
                      and description["families"][r.family] == part]
            assert sum(r.passed for r in chosen) == sum(not r.passed for r in chosen)
    # Pandas 0..3 tuned; Pandas 4, 5 and every Numpy problem in the test part
    assert {r.problem_id for r in records if description["families"][r.family] == "tuning"} <= {0, 1, 2, 3}
    # Numpy: small passes 6, 8, 10 and large 6, 7, 8; Pandas 4, 5: small passes 4, large both
    assert description["counts"]["test/Numpy"] == {"passing": 6, "failing": 6, "passing_available": 6,
                                                   "failing_available": 6}
    assert description["counts"]["test/Pandas"] == {"passing": 1, "failing": 1, "passing_available": 3,
                                                    "failing_available": 1}
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"


def test_a_rebuilt_pool_keeps_the_verdicts_of_answers_it_keeps(script, tmp_path):
    sources, out = _sources(tmp_path), tmp_path / "pool"
    script.pool(sources, out, tuned_limit=70)
    lines = (out / "records.jsonl").read_text().splitlines()
    judged = json.loads(lines[0])
    judged["judgments"] = [{"judge": "quality/j", "kind": "quality", "score": 4.0}]
    (out / "records.jsonl").write_text("\n".join([json.dumps(judged), *lines[1:]]) + "\n")
    script.pool(sources, out, tuned_limit=70)
    again = {r.key: r for r in read_records(out / "records.jsonl", repair=False)}
    assert again[judged["key"]].judgments[0].score == 4.0


def test_pairs_and_held_out_figures(script, tmp_path):
    out = tmp_path / "pool"
    script.pool(_sources(tmp_path), out, tuned_limit=70)
    records, families = script._halves(out)
    pairs = script.pairs_of(records, families, "test")
    assert len(pairs) == len({a.problem_id for a, _ in pairs})
    assert all(a.problem_id == b.problem_id and a.passed != b.passed for a, b in pairs)
    # a quality judge that scores passing answers 4 and failing ones 2 on the test part: AUROC 1
    rows = []
    for r in records:
        row = r.to_json()
        row["judgments"] = [{"judge": "quality/j", "kind": "quality", "score": 4.0 if r.passed else 2.0}]
        rows.append(row)
    (out / "records.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    # a pairwise judge that prefers the first answer shown whatever it is: both orders disagree, preference 0.5
    with (out / "pairs.jsonl").open("w") as f:
        for a, b in pairs:
            f.write(json.dumps({"a": a.key, "b": b.key, "half": "test", "judge": "pairwise/j", "version": "pairwise-1",
                                "a_passed": a.passed, "b_passed": b.passed, "preference": 0.5,
                                "agree": False}) + "\n")
    figures = script.heldout(out)
    test = figures["quality"]["quality/j"]["test"]
    assert test["auroc"] == 1.0 and test["n"] == sum(families[r.family] == "test" for r in records)
    paired = figures["pairwise"]["pairwise/j@pairwise-1"]["test"]
    assert paired["pairs"] == len(pairs) and paired["accuracy"] == 0.5 and paired["orders_agree"] == 0.0
    assert paired["absolute quality/j"]["accuracy"] == 1.0


def test_failing_answers_are_drawn_from_solved_problems_first_one_per_problem(script):
    from spark_eval.records import Record

    failing = [Record.from_json({**_answer(p, "m", "Numpy", False, f"{p} {i}"), "key": f"run/{p}/{i}"})
               for p in (6, 7, 8) for i in range(3)]
    order = script._matched(failing, solved={6, 8})
    assert {r.problem_id for r in order[:2]} == {6, 8} and {r.problem_id for r in order[2:4]} == {6, 8}
    assert [r.problem_id for r in order[4:6]] in ([6, 8], [8, 6]) and all(r.problem_id == 7 for r in order[6:])
