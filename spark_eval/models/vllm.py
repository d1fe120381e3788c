"""vLLM's in-process engine: requests in flight are gathered into batches for `LLM.chat`."""
from __future__ import annotations

import asyncio
from typing import Any

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply


class VLLMModel(ProviderModel):
    """An open-weights model on local GPUs (e.g. Qwen3-Coder-30B-A3B-Instruct).

    Concurrent `complete` calls wait up to `batch_window_s` to be gathered, then go to `LLM.chat` as one
    batch (a list of conversations with one `SamplingParams` each); set `concurrency` (and
    `pipeline.concurrency`) high so batches fill.

    Args:
        tensor_parallel_size: GPUs the model is split over.
        max_model_len: context length (None: the model's).
        gpu_memory_utilization: share of each GPU's memory vLLM may take.
        batch_window_s: how long a request waits for others to join its batch.
        max_batch: the largest batch.
        seed: the engine's seed.
        **kwargs: see ProviderModel.
    """

    provider = "vllm"

    def __init__(
        self,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        batch_window_s: float = 0.05,
        max_batch: int = 256,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ModelConfigError(f"{self.name} needs vLLM and a GPU: pip install vllm") from None
        self.engine_args = {
            "model": self.model,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
        }
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self._llm = None
        self._pending: list[tuple[list[Message], GenerationParams, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "max_model_len": self.engine_args["max_model_len"]}

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((messages, params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_after_window())
        return await future

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self.batch_window_s)
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                outputs = await asyncio.to_thread(self._generate, [b[0] for b in batch], [b[1] for b in batch])
            except Exception as e:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, _, future), output in zip(batch, outputs):
                if not future.done():
                    future.set_result(_reply(output))

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
        return self._load().chat(conversations, sampling_params=sampling, use_tqdm=False)

    def _load(self) -> Any:
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(**{k: v for k, v in self.engine_args.items() if v is not None})
        return self._llm

    def _retryable(self, error: BaseException) -> bool:
        return False


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
