"""Spark's gate (memory/gate.py): the coder drafts first; a sure draft is the answer and the memory stays silent."""
import asyncio
import json

import pytest

from spark_eval.memory.base import MemoryConfigError
from spark_eval.memory.gate import DraftGate, build_gate
from spark_eval.models.coder import ChatCoder
from spark_eval.pipeline.solve import Condition, advise_and_answer
from spark_eval.records import Recommendation
from spark_eval.stats.analysis import condition_counts
from spark_eval.types import Problem
from tests.fakes.scripted import ScriptedModel

PROBLEM = Problem(7, "Numpy", "Origin", ("Numpy", 7), "Sum the rows of a.", "result = a.sum(1)", "", 1)


class LogitModel(ScriptedModel):
    choice_probabilities = True


class Benchmark:
    stop = ("</code>",)

    def program(self, problem, text):
        code = text.replace("```python", "").replace("```", "").strip()
        return code, code

    def coder_messages(self, problem, recommendation):
        advice = f"\nAdvice: {recommendation.text}" if recommendation is not None and recommendation.text else ""
        return [{"role": "user", "content": problem.prompt + advice}]


class AdvisingMemory:
    name = "spark_gated"

    def __init__(self, gate, reads_draft=False):
        self.gate, self.reads_draft = gate, reads_draft
        self.asked = 0
        self.drafts = []

    async def recommend(self, problem, draft=None):
        self.asked += 1
        self.drafts.append(draft)
        return Recommendation(text="Use `numpy.sum` with axis=1.", trace={"queries": []})


def condition(model, memory):
    return Condition(Benchmark(), ChatCoder(model, Benchmark()), memory, None, (), 1, 0, {})


def scored(*logprobs):
    return json.dumps({"token_logprobs": list(logprobs), "best_logprobs": list(logprobs)})


def test_a_sure_draft_is_the_answer_and_the_memory_stays_silent():
    model = LogitModel(replies=["result = a.sum(axis=1)", scored(-0.01, -0.03)])
    memory = AdvisingMemory(DraftGate(threshold=-0.5))
    recommendation, completion = asyncio.run(advise_and_answer(PROBLEM, condition(model, memory), 0))
    assert completion.text == "result = a.sum(axis=1)" and memory.asked == 0
    assert recommendation.abstained and recommendation.text == "" and recommendation.error is None
    gate = recommendation.trace["gate"]
    assert gate["speaks"] is False and gate["value"] == pytest.approx(-0.03) and gate["threshold"] == -0.5
    assert model.params[1].extra == {"score": {"reply": "result = a.sum(axis=1)"}}  # the draft itself is scored
    assert "Advice" not in model.sent[0][0]["content"]  # the draft is written without memory


def test_an_unsure_draft_gets_advice_and_a_second_answer():
    model = LogitModel(replies=["result = a.summ()", scored(-2.0, -0.5), "result = a.sum(1)"])
    memory = AdvisingMemory(DraftGate(threshold=-0.5))
    recommendation, completion = asyncio.run(advise_and_answer(PROBLEM, condition(model, memory), 0))
    assert completion.text == "result = a.sum(1)" and memory.asked == 1
    assert not recommendation.abstained and recommendation.trace["gate"]["speaks"] is True
    assert recommendation.trace["queries"] == [] and "Advice: Use `numpy.sum`" in model.sent[2][0]["content"]


def test_the_mean_token_can_be_the_signal_and_an_empty_draft_speaks():
    gate = DraftGate(signal="draft_mean_logprob", threshold=-0.7)
    coder = ChatCoder(LogitModel(replies=[scored(-0.1, -1.5)]), Benchmark())
    assert asyncio.run(gate.decide(coder, PROBLEM, "x = 1"))["speaks"] is True  # mean -0.8 < -0.7
    assert asyncio.run(gate.decide(coder, PROBLEM, "  "))["value"] is None


def test_a_memory_without_a_gate_always_speaks():
    model = ScriptedModel(replies=["result = a.sum(1)"])
    memory = AdvisingMemory(None)
    recommendation, _ = asyncio.run(advise_and_answer(PROBLEM, condition(model, memory), 0))
    assert memory.asked == 1 and len(model.sent) == 1 and "gate" not in recommendation.trace
    assert memory.drafts == [None]


def test_a_memory_that_reads_the_draft_gets_its_code_with_or_without_a_gate():
    model = ScriptedModel(replies=["```python\nresult = a.summ()\n```", "result = a.sum(1)"])
    memory = AdvisingMemory(None, reads_draft=True)
    recommendation, completion = asyncio.run(advise_and_answer(PROBLEM, condition(model, memory), 0))
    assert memory.drafts == ["result = a.summ()"] and completion.text == "result = a.sum(1)"
    assert "Advice" not in model.sent[0][0]["content"] and "Advice: Use" in model.sent[1][0]["content"]
    assert "gate" not in recommendation.trace
    gated = AdvisingMemory(DraftGate(threshold=-0.5), reads_draft=True)
    model = LogitModel(replies=["result = a.summ()", scored(-2.0), "result = a.sum(1)"])
    recommendation, _ = asyncio.run(advise_and_answer(PROBLEM, condition(model, gated), 0))
    assert gated.drafts == ["result = a.summ()"] and recommendation.trace["gate"]["speaks"] is True


def test_bad_gate_settings_and_a_coder_without_logits_are_refused_in_one_line():
    assert build_gate(None) is None
    with pytest.raises(MemoryConfigError, match="draft_mean_logprob"):
        build_gate({"signal": "vibes", "threshold": 0})
    with pytest.raises(MemoryConfigError, match="signal and threshold"):
        build_gate({"signal": "draft_mean_logprob", "threshold": 0, "margin": 1})
    with pytest.raises(MemoryConfigError, match="memory.gate=null"):
        DraftGate().check(ChatCoder(ScriptedModel(), Benchmark()))


def test_abstentions_are_counted_per_condition_not_as_errors():
    import pandas as pd

    rows = [{"model": "m", "memory": "spark_gated", "run_dir": "r", "key": f"{i}/e0/r0", "error": None,
             "advised": i >= 3, "advice_error": None, "abstained": i < 3, "quality": float("nan"),
             "problem_id": i, "passed": 1.0} for i in range(5)]
    counts = condition_counts(pd.DataFrame(rows), None, {("m", "spark_gated"): False})
    row = counts.iloc[0]
    assert row["abstained"] == 3 and row["advice_given"] == 2 and row["errors"] == 0 and row["advice_errors"] == 0
