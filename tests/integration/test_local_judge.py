"""The embedded judge (Qwen2.5-Coder-1.5B-Instruct) inside a real run: a verdict for every answer."""
import json

import pytest

from spark_eval.judge.quality import QUALITY_VERSION
from spark_eval.pipeline import run
from tests.conftest import compose_config

pytest.importorskip("llama_cpp")


def test_embedded_judge_grades_a_run(tmp_path, grading_python):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": 291, "code": "result = a.shape"}) + "\n"
                       + json.dumps({"id": 292, "code": "result = 'no idea'"}) + "\n")
    cfg = compose_config("model=answers", f"model.path={answers}", "judge=local", "dataset.ids=[291,292]",
                         f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
                         "judge.models.quality.cache_path=null")
    summary = run(cfg, run_dir=tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    verdicts = [j for r in records for j in r["judgments"]]
    assert [j["kind"] for j in verdicts] == ["quality", "quality"]  # no recommendation: no helpfulness verdict
    for j in verdicts:  # a verdict, not a missing value: the expected score over the five scores' probabilities
        assert j["version"] == QUALITY_VERSION + "-expected" and j["parse_error"] is None, j
        assert 1 <= j["score"] <= 5 and sum(j["criteria"]["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert summary["judge_missing_rate"] == {"quality/qwen2.5-coder-1.5b+ref": 0.0}  # the local judge sees the reference
    validity = json.loads((tmp_path / "run" / "validity.json").read_text())
    assert f"quality/qwen2.5-coder-1.5b+ref@{QUALITY_VERSION}-expected" in validity["missing_rate"]


def test_embedded_helpfulness_judge_grades_a_recommendation(problems):
    import asyncio

    from hydra.utils import instantiate

    from spark_eval.judge.helpfulness import HelpfulnessJudge
    from spark_eval.records import BANDS, Recommendation

    model = instantiate(compose_config("model=local_1p5b", "model.cache_path=null").model)
    advice = Recommendation(text="`a.shape` gives the dimensions of a NumPy array as a tuple; assign it to `result`.")
    verdict = asyncio.run(HelpfulnessJudge(model, scoring="sampled").grade(problems[291], "", advice))
    assert verdict.parse_error is None and verdict.band in BANDS and verdict.score in (1, 2, 3, 4, 5)
    assert len(verdict.criteria) == 5 and verdict.rationale and verdict.usage.capped == 0  # bounded fields
    expected = asyncio.run(HelpfulnessJudge(model).grade(problems[291], "", advice))  # read off the logits
    assert expected.band in BANDS and 1 <= expected.score <= 5 and not expected.usage.output_tokens
