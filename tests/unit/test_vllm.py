"""vLLM provider: runs where `vllm` imports. The engine itself needs a GPU, so a stand-in receives the batch;
the SamplingParams and StructuredOutputsParams it gets are vLLM's own."""
import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

vllm = pytest.importorskip("vllm")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project runs on 3.10 too

from spark_eval.models.base import GenerationParams  # noqa: E402
from spark_eval.models.vllm import VLLMModel  # noqa: E402


class EngineStandIn:
    def __init__(self):
        self.batches = []

    def chat(self, conversations, sampling_params, use_tqdm):
        self.batches.append((conversations, sampling_params))
        return [SimpleNamespace(request_id=i, prompt_token_ids=[1, 2, 3],
                                outputs=[SimpleNamespace(text=f"answer {i}", finish_reason="stop", token_ids=[7, 8])])
                for i in range(len(conversations))]


def test_concurrent_requests_go_to_llm_chat_as_one_batch():
    model = VLLMModel(name="qwen", model="Qwen/Qwen3-Coder-30B-A3B-Instruct", concurrency=64, cache_path=None)
    model._llm = engine = EngineStandIn()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}

    async def many():
        return await asyncio.gather(*(
            model.complete([{"role": "user", "content": f"q{i}"}],
                           GenerationParams(max_tokens=32, stop=("</code>",), json_schema=schema if i == 0 else None))
            for i in range(5)))

    completions = asyncio.run(many())
    assert len(engine.batches) == 1 and len(engine.batches[0][0]) == 5
    sampling = engine.batches[0][1]
    assert isinstance(sampling[0], vllm.SamplingParams) and sampling[0].max_tokens == 32
    assert sampling[0].stop == ["</code>"] and sampling[0].structured_outputs is not None
    assert sampling[1].structured_outputs is None
    assert [c.text for c in completions] == [f"answer {i}" for i in range(5)]
    assert (completions[0].input_tokens, completions[0].output_tokens) == (3, 2)


def test_the_installed_vllm_is_one_the_extra_pins():
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    requirement = Requirement(pyproject["project"]["optional-dependencies"]["vllm"][0])
    assert requirement.specifier.contains(vllm.__version__, prereleases=True), (vllm.__version__, str(requirement))
