"""scripts/make_misleading_recommendations.py: own, other-problem and misleading advice for the helpfulness bench."""
import importlib.util
import json
import sys

from spark_eval.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "make_misleading_recommendations.py"
NAMES = {"Numpy": frozenset({"numpy.argsort", "numpy.roll", "numpy.flip", "numpy.ndarray.shape", "numpy.shape"}),
         "Pandas": frozenset({"pandas.melt", "pandas.DataFrame.groupby", "pandas.concat"})}


def load_script():
    spec = importlib.util.spec_from_file_location("make_misleading", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_misleading_advice_steers_from_the_reference_api_to_another(problems):
    script = load_script()
    assert script.reference_apis("idx = np.argsort(a)[::-1]\nout = df.groupby('k').sum()", NAMES["Numpy"]) == ["numpy.argsort"]
    text = script.misleading(7, "Numpy", "result = np.argsort(a)", NAMES["Numpy"])
    assert "Do not use `numpy.argsort`" in text and ("`numpy.roll`" in text or "`numpy.flip`" in text)
    assert text == script.misleading(7, "Numpy", "result = np.argsort(a)", NAMES["Numpy"])  # seeded


def test_three_kinds_per_advised_problem(tmp_path, monkeypatch, problems):
    script = load_script()
    monkeypatch.setattr(script, "load_api_names", lambda cfg: NAMES)
    run = tmp_path / "run"
    run.mkdir()
    records = [{"key": f"{pid}/e0/r0", "problem_id": pid, "library": problems[pid].library,
                "recommendation": {"text": f"advice for {pid}" if pid != 2 else ""}} for pid in (0, 1, 2, 291, 292)]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "recs.jsonl"
    monkeypatch.setattr(sys, "argv", ["x", str(run), "--out", str(out)])
    script.main()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["own", "other", "misleading"] * 4  # 2 gave no advice: skipped
    for own, other in zip(rows[::3], rows[1::3]):
        assert own["text"] == f"advice for {own['problem_id']}" and other["text"] != own["text"]
        other_id = int(other["source"].split("problem ")[1].rstrip(")"))
        assert problems[other_id].library != problems[own["problem_id"]].library  # another library when there is one
