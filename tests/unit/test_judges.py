import asyncio
import json

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from spark_eval.data.base import problems_hash as dataset_hash
from spark_eval.judge.helpfulness import HelpfulnessJudge, helpfulness_messages
from spark_eval.judge.quality import QUALITY_RUBRIC, QUALITY_VERSION, QualityJudge, quality_messages
from spark_eval.models.base import ModelCallError
from spark_eval.models.structured import ParseError, extract_json, integer_in
from spark_eval.pipeline.rejudge import judge_run
from spark_eval.records import BANDS, Recommendation, Record
from spark_eval.stats.validity import agreement, quality_vs_execution, validity_report
from tests.conftest import compose_config
from tests.fakes.runs import record as fake_record
from tests.fakes.scripted import ScriptedModel

GOOD_QUALITY = '{"flaw": "none", "correct": true, "score": 4}'
GOOD_HELP = json.dumps({"check": "Points at the right API.", "band": "good",
                        "criteria": {c: 4 for c in
                                     ("completeness", "effectiveness", "generalization", "relevance", "explainability")}})


def test_quality_prompt_renders_every_rubric_level_and_the_reference_only_when_asked(problems):
    p = problems[291]
    system, prompt = (m["content"] for m in quality_messages(p, "result = np.shape(a)"))
    assert all(f"\n{level} - " in "\n" + QUALITY_RUBRIC for level in range(1, 6))
    assert QUALITY_RUBRIC in system and p.prompt in prompt and "result = np.shape(a)" in prompt
    assert p.reference_code not in system + prompt and "reference" not in system
    assert p.reference_code in quality_messages(p, "x = 1", show_reference=True)[1]["content"]


def test_judges_fixed_instructions_are_one_system_message_for_every_problem(problems):
    """The instructions a model can keep the state of come first and do not depend on the problem or answer."""
    a, b = problems[0], problems[500]
    for expected in (False, True):
        for reference in (False, True):
            first, second = quality_messages(a, "x = 1", reference, expected), quality_messages(b, "y", reference, expected)
            assert first[0] == second[0] and len(first[0]["content"]) > 400 and a.prompt in first[1]["content"]
        advice = Recommendation(text="use np.shape")
        first, second = helpfulness_messages(a, advice, expected), helpfulness_messages(b, advice, expected)
        assert first[0] == second[0] and "HARMFUL" in first[0]["content"] and b.prompt in second[1]["content"]


def test_judges_are_blind_to_model_condition_and_recommendation(problems):
    p = problems[291]
    advice = Recommendation(text="SECRET-ADVICE: use np.shape")
    quality = QualityJudge(ScriptedModel(name="gpt-5-codex"))
    text = json.dumps(quality.messages(p, "result = a.shape", advice)).lower()
    for leak in ("secret-advice", "gpt-5-codex", "spark", "recommendation", "condition"):
        assert leak not in text
    helpful = json.dumps(helpfulness_messages(p, advice))
    assert "SECRET-ADVICE" in helpful and "result = a.shape" not in helpful and "gpt-5-codex" not in helpful


@pytest.mark.parametrize("reply", [GOOD_QUALITY, f"```json\n{GOOD_QUALITY}\n```", f"Sure! Here it is: {GOOD_QUALITY} Hope it helps."])
def test_good_and_wrapped_replies_parse(reply):
    assert extract_json(reply) == {"flaw": "none", "correct": True, "score": 4}


@pytest.mark.parametrize("reply, message", [('{"reasoning": "fine", "sco', "cut off"), ("I think it is a 4.", "no JSON"),
                                            ("", "empty")])
def test_truncated_and_garbage_replies_say_why(reply, message):
    with pytest.raises(ParseError, match=message):
        extract_json(reply)


def test_scores_must_be_integers_in_range():
    assert integer_in("4", 1, 5, "score") == 4 and integer_in(5.0, 1, 5, "score") == 5
    for bad in (4.5, 6, 0, "four", None):
        with pytest.raises(ParseError, match='"score" must be an integer from 1 to 5'):
            integer_in(bad, 1, 5, "score")


def test_unparsable_reply_is_retried_once_quoting_the_error(problems):
    model = ScriptedModel(replies=["I'd give it a four.", GOOD_QUALITY])
    verdict = asyncio.run(QualityJudge(model).grade(problems[0], "x = 1", None))
    assert (verdict.score, verdict.parse_error, verdict.version) == (4, None, QUALITY_VERSION)
    assert verdict.rationale == "none"
    assert len(model.sent) == 2 and "no JSON object" in model.sent[1][-1]["content"]
    assert verdict.usage.calls == 2 and verdict.usage.input_tokens == 20


def test_garbage_twice_is_missing_with_the_raw_reply_kept(problems):
    model = ScriptedModel(replies=["no idea", '{"flaw": "meh", "correct": false, "score": 9}'])
    verdict = asyncio.run(QualityJudge(model).grade(problems[0], "x = 1", None))
    assert verdict.score is None and verdict.raw == '{"flaw": "meh", "correct": false, "score": 9}'
    assert "must be an integer from 1 to 5" in verdict.parse_error and len(model.sent) == 2


def test_a_failed_call_is_an_outage_not_a_missing_verdict(problems):
    """A call that fails after its retries raises: the record becomes an error and is judged again on resume."""
    with pytest.raises(ModelCallError, match="scripted failure"):
        asyncio.run(QualityJudge(ScriptedModel(replies=["!fail"])).grade(problems[0], "x = 1", None))


def test_helpfulness_bands_and_criteria(problems):
    judge = HelpfulnessJudge(ScriptedModel(replies=[GOOD_HELP]))
    assert asyncio.run(judge.grade(problems[0], "x", None)) is None
    verdict = asyncio.run(judge.grade(problems[0], "x", Recommendation(text="use iloc")))
    assert (verdict.band, verdict.score, verdict.kind) == ("GOOD", 4, "helpfulness")
    assert set(verdict.criteria) == {"completeness", "effectiveness", "generalization", "relevance", "explainability"}
    assert verdict.criteria["relevance"] == {"score": 4} and verdict.rationale == "Points at the right API."
    assert BANDS == ("EXTREMELY HELPFUL", "GOOD", "FAIR", "POOR", "HARMFUL")
    bad = HelpfulnessJudge(ScriptedModel(replies=[GOOD_HELP.replace('"good"', '"AMAZING"')]))
    assert "must be one of" in asyncio.run(bad.grade(problems[0], "x", Recommendation(text="r"))).parse_error


def record(key, status, scores):
    row = fake_record(0, "m", "none")
    return {**row, "key": key, "exec": {**row["exec"], "status": status},
            "judgments": [{"judge": j, "kind": "quality", "score": s, "repeat": r} for (j, r), s in scores.items()]}


def typed(rows):
    return [Record.from_json(r) for r in rows]


def test_quality_vs_execution_on_a_hand_computed_table():
    rows = [record("a", "passed", {("q", 0): 5}), record("b", "passed", {("q", 0): 4}),
            record("c", "failed", {("q", 0): 4}), record("d", "failed", {("q", 0): 2}),
            record("e", "timeout", {("q", 0): None}), record("f", "infra_error", {("q", 0): 1})]
    out = quality_vs_execution(typed(rows), "q")
    assert (out["n"], out["n_passed"]) == (4, 2)
    # pass/fail pairs: (5,4) (5,2) (4,4 tie) (4,2) -> (1 + 1 + 0.5 + 1) / 4
    assert out["auroc"] == pytest.approx(3.5 / 4)
    assert out["false_accept_rate"] == pytest.approx(1 / 2)
    assert out["point_biserial"] == pytest.approx(np.corrcoef([1, 1, 0, 0], [5, 4, 4, 2])[0, 1])


def test_agreement_between_raters():
    same = agreement([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert same["krippendorff_alpha"] == pytest.approx(1.0) and same["qwk"] == pytest.approx(1.0)
    # by hand, a=[1,2], b=[2,1]: observed quadratic disagreement 2 x 1, expected under independence
    # (1 + 0 + 0 + 1) / 4 x 2 = 1 per pair, so kappa = 1 - 1/0.5 = -1
    assert agreement([1, 2], [2, 1])["qwk"] == pytest.approx(-1.0)
    reversed_ = agreement([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert reversed_["qwk"] < 0 and reversed_["krippendorff_alpha"] < 0
    with_missing = agreement([1, 2, None, 4], [1, 2, 3, None])
    assert with_missing["n_pairs"] == 2


def test_validity_report_covers_judges_repeats_and_missing():
    rows = [record("a", "passed", {("q1", 0): 5, ("q1", 1): 5, ("q2", 0): 4}),
            record("b", "failed", {("q1", 0): 2, ("q1", 1): None, ("q2", 0): 1}),
            record("c", "failed", {("q1", 0): 3, ("q1", 1): 3, ("q2", 0): 3})]
    report = validity_report(typed(rows))
    assert report["missing_rate"] == {"q1": pytest.approx(1 / 6), "q2": 0.0}
    assert report["vs_execution"]["q1"]["auroc"] == 1.0
    assert report["between_repeats"]["q1"]["n_pairs"] == 2
    assert report["between_judges"]["q1 ~ q2"]["n_pairs"] == 3


def make_run(tmp_path, problems, keys=(291, 292)):
    records = []
    for pid in keys:
        row = fake_record(pid, "reference", "none", library="Numpy")
        records.append({**row, "completion": {**row["completion"], "text": problems[pid].reference_code},
                        "code": problems[pid].reference_code, "judgments": []})
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "finished", "dataset_hash": dataset_hash(problems),
                                                        "ledger": {"learner": {"calls": 2}}}))
    return records


def rejudge_cfg(tmp_path, replies):
    cfg = compose_config("stage=judge", f"run_dir={tmp_path}", "judge=local", "pipeline.progress=false")
    with open_dict(cfg):
        for kind in ("quality", "helpfulness"):
            cfg.judge.models[kind] = OmegaConf.create(
                {"_target_": "tests.fakes.scripted.ScriptedModel", "name": "scripted", "replies": replies})
    return cfg


def test_rejudging_appends_verdicts_resumably_without_touching_completions(tmp_path, problems):
    before = make_run(tmp_path, problems)
    (tmp_path / "judgments.jsonl").write_text(json.dumps({"key": "291/e0/r0", "judgment": {
        "judge": "quality/scripted+ref", "kind": "quality", "score": 3, "version": QUALITY_VERSION, "repeat": 0}}) + "\n"
        + '{"key": "292/e0/r0", "judgm')  # a pass killed while writing its second verdict
    summary = judge_run(rejudge_cfg(tmp_path, [GOOD_QUALITY]))
    after = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in after] == [r["completion"] for r in before]
    assert [[j["score"] for j in r["judgments"]] for r in after] == [[3], [4]]  # 291 kept its journaled verdict
    assert not (tmp_path / "judgments.jsonl").exists()
    assert summary["quality_mean"] == {"quality/scripted+ref": 3.5}  # judge=local shows the reference
    # validity figures are per judge and rubric version
    assert json.loads((tmp_path / "validity.json").read_text())["missing_rate"] == {f"quality/scripted+ref@{QUALITY_VERSION}": 0.0}
    judge_run(rejudge_cfg(tmp_path, ["!fail"]))  # nothing left to judge: no call is made
    assert [len(json.loads(line)["judgments"]) for line in (tmp_path / "records.jsonl").read_text().splitlines()] == [1, 1]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [p["verdicts_added"] for p in manifest["judge_passes"]] == [1, 0]
    # the judges' spending is updated; what the run's memory spent (only in the manifest) is kept
    assert manifest["ledger"]["learner"] == {"calls": 2} and manifest["ledger"]["judge"]["calls"] == 1


class ChoosingModel(ScriptedModel):
    """A scripted model that answers `choices` requests, as the embedded models do from their logits."""

    choice_probabilities = True


def test_expected_scoring_reads_the_probabilities_of_each_score(problems):
    probabilities = {"1": 0.1, "2": 0.2, "3": 0.1, "4": 0.2, "5": 0.4}
    model = ChoosingModel(replies=[json.dumps({"probabilities": probabilities})])
    judge = QualityJudge(model, show_reference=True)
    verdict = asyncio.run(judge.grade(problems[291], "result = a.shape", None))
    assert verdict.score == pytest.approx(0.1 + 0.4 + 0.3 + 0.8 + 2.0) and verdict.version == QUALITY_VERSION + "-expected"
    assert verdict.criteria == {"probabilities": probabilities} and verdict.parse_error is None
    params = model.params[0]
    assert params.extra["choices"] == {"prefix": '{"score": ', "options": ["1", "2", "3", "4", "5"]}
    assert '{"score": <integer 1-5>}' in model.sent[0][-1]["content"] and '"flaw"' not in model.sent[0][-1]["content"]
    assert QualityJudge(model, scoring="sampled").version == QUALITY_VERSION
    with pytest.raises(ValueError, match="cannot give option probabilities"):
        QualityJudge(ScriptedModel(), scoring="expected")
    bands = {"EXTREMELY HELPFUL": 0.1, "GOOD": 0.6, "FAIR": 0.1, "POOR": 0.1, "HARMFUL": 0.1}
    helpful = HelpfulnessJudge(ChoosingModel(replies=[json.dumps({"probabilities": bands})]))
    verdict = asyncio.run(helpful.grade(problems[0], "", Recommendation(text="use iloc")))
    assert verdict.band == "GOOD" and verdict.score == pytest.approx(0.5 + 2.4 + 0.3 + 0.2 + 0.1)
    broken = QualityJudge(ChoosingModel(replies=['{"probabilities": {"1": 1.0}}']))
    assert broken.expected and asyncio.run(broken.grade(problems[0], "x", None)).score is None


def test_validity_groups_verdicts_by_rubric_version():
    rows = [record("a", "passed", {("q", 0): 5}), record("b", "failed", {("q", 0): 2})]
    for row, (score, version) in zip(rows, ((3, "quality-2"), (4, "quality-2"))):
        row["judgments"][0]["version"] = "quality-3"
        row["judgments"].append({"judge": "q", "kind": "quality", "score": score, "repeat": 0, "version": version})
    report = validity_report(typed(rows))
    assert report["vs_execution"]["q@quality-3"]["auroc"] == 1.0  # the new rubric separates them
    assert report["vs_execution"]["q@quality-2"]["auroc"] == 0.0  # the old one, on the same records, does not
    assert set(report["missing_rate"]) == {"q@quality-3", "q@quality-2"}


def test_agreement_on_expected_scores_is_interval_and_kappa_on_rounded_levels():
    out = agreement([4.6, 3.2, 1.4, 2.5], [4.4, 3.4, 1.6, 2.6])
    assert out["scale"] == "interval" and out["krippendorff_alpha"] > 0.9
    assert out["qwk"] == pytest.approx(agreement([5, 3, 1, 2], [4, 3, 2, 3])["qwk"])  # 2.5 rounds to 2 (half to even)
    assert agreement([1, 2, 3], [1, 2, 3])["scale"] == "ordinal"


def test_raw_newlines_inside_strings_are_read():
    assert extract_json('{"intent": "min and max:\n\n- dates", "score": 3}') == {"intent": "min and max:\n\n- dates", "score": 3}


def test_auroc_interval_and_signal_say_what_the_records_allow():
    from spark_eval.stats.validity import auroc, auroc_interval, signal

    rng = np.random.default_rng(0)
    passed = np.array([True] * 40 + [False] * 40)
    families = [i // 2 for i in range(80)]
    assert auroc(passed, np.r_[np.full(40, 5.0), np.full(40, 1.0)]) == 1.0
    assert auroc(passed, np.full(80, 3.0)) == 0.5
    separating = np.r_[rng.normal(4, 0.5, 40), rng.normal(2, 0.5, 40)]
    low, high = auroc_interval(list(passed), list(separating), families)
    assert 0.9 < low <= high <= 1.0 and signal(40, 40, low, high) == "signal"
    noise = rng.normal(3, 1, 80)
    low, high = auroc_interval(list(passed), list(noise), families)
    assert low < 0.5 < high and signal(40, 40, low, high) == "no signal on these records"
    low, high = auroc_interval(list(passed), list(-separating), families)
    assert signal(40, 40, low, high) == "inverted"
    assert signal(3, 77, 0.8, 0.9) == "too few to tell"


def test_quality_vs_execution_marks_a_judge_on_too_few_answers():
    rows = [record("a", "passed", {("q", 0): 5}), record("b", "failed", {("q", 0): 2})]
    out = quality_vs_execution(typed(rows), "q")
    assert out["signal"] == "too few to tell" and out["auroc"] == 1.0


def test_pairwise_judge_asks_both_orders_and_says_whether_they_agree(problems):
    from spark_eval.judge.pairwise import PAIRWISE_VERSION, PairwiseJudge

    p = problems[291]
    # sampled: A better in the first order (a shown first), A again in the second (b shown first): position bias
    model = ScriptedModel(replies=['{"reason": "A runs", "better": "A"}', '{"reason": "A runs", "better": "A"}'])
    judge = PairwiseJudge(model, show_reference=True, scoring="sampled")
    verdict = asyncio.run(judge.compare(p, "result = GOOD", "result = BAD"))
    first, second = (m[-1]["content"] for m in model.sent)
    assert first.index("result = GOOD") < first.index("result = BAD") and second.index("result = BAD") < second.index("result = GOOD")
    assert p.reference_code in first and judge.name == "pairwise/scripted+ref" and verdict.forward.version == PAIRWISE_VERSION
    assert verdict.preference == 0.5 and verdict.agree is False
    consistent = PairwiseJudge(ScriptedModel(replies=['{"reason": "r", "better": "A"}', '{"reason": "r", "better": "B"}']))
    both = asyncio.run(consistent.compare(p, "x = 1", "x = 2"))
    assert both.preference == 1.0 and both.agree is True and both.to_json()["backward"]["score"] == 0.0
    # expected: the options' probabilities; a tie counts half for each side
    chooser = ChoosingModel(replies=[json.dumps({"probabilities": {"A": 0.6, "B": 0.2, "tie": 0.2}}),
                                     json.dumps({"probabilities": {"A": 0.1, "B": 0.7, "tie": 0.2}})])
    expected = asyncio.run(PairwiseJudge(chooser).compare(p, "x = 1", "x = 2"))
    assert chooser.params[0].extra["choices"] == {"prefix": '{"better": "', "options": ["A", "B", "tie"]}
    assert expected.forward.score == pytest.approx(0.7) and expected.backward.score == pytest.approx(0.2)
    assert expected.preference == pytest.approx(0.75) and expected.agree is True
    # an unusable reply is a missing verdict, not a preference
    broken = asyncio.run(PairwiseJudge(ScriptedModel(replies=['{"better": "C"}'])).compare(p, "x", "y"))
    assert broken.preference is None and broken.agree is None and "better" in broken.forward.parse_error
    assert PairwiseJudge.planned_calls(None, p, None, 1) == [] and judge.messages(p, "x", None) is None
