"""A chat model as a Coder: the benchmark's conversation, at the model's default parameters."""
from __future__ import annotations

from typing import Any

from spark_eval.data.base import Benchmark
from spark_eval.models.base import ChatModel, Coder, GenerationParams, Message
from spark_eval.models.calls import Call, tokens
from spark_eval.records import Completion, Recommendation
from spark_eval.types import Problem


class ChatCoder:
    """A Coder that asks a ChatModel with the benchmark's conversation and stop sequences."""

    output_tokens = 300
    """What the dry run assumes an answer takes."""

    def __init__(self, model: ChatModel, benchmark: Benchmark, seed: int | None = None) -> None:
        self.model = model
        self.benchmark = benchmark
        self.name = model.name
        self.seed = seed

    def request(self, problem: Problem, recommendation: Recommendation | None,
                repeat: int = 0) -> tuple[list[Message], GenerationParams]:
        """The messages and parameters `answer` sends."""
        params = self.model.default_params(stop=self.benchmark.stop, seed=sample_seed(self.seed, repeat), repeat=repeat)
        return self.benchmark.coder_messages(problem, recommendation), params

    async def answer(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> Completion:
        return await self.model.complete(*self.request(problem, recommendation, repeat))

    def request_key(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> str:
        """The response cache's key of the request `answer` sends (a provider's, `ProviderModel.request_key`)."""
        return self.model.request_key(*self.request(problem, recommendation, repeat))

    @classmethod
    def planned_calls(cls, model: Any, benchmark: Benchmark, problem: Problem,
                      recommendation: Recommendation | None) -> list[Call]:
        """The call `answer` makes for `problem`, with the model configured as `model`."""
        return [Call("coder", model, tokens(benchmark.coder_messages(problem, recommendation)), cls.output_tokens)]


SAMPLE_SEED_STRIDE = 7919
"""Sample r of a problem is drawn with seed `seed + r x stride` (sample 0 keeps the run's seed), so samples
differ and two runs' seeds do not share samples unless they are a multiple of the stride apart."""


def sample_seed(seed: int | None, repeat: int) -> int | None:
    return None if seed is None else seed + SAMPLE_SEED_STRIDE * repeat


def coder_class(model_class: type) -> type:
    """The Coder a model of `model_class` answers as: replayed answers are one already; chat models get the
    conversation (ChatCoder)."""
    return model_class if hasattr(model_class, "answer") else ChatCoder


def as_coder(model: Any, benchmark: Benchmark, seed: int | None = None) -> Coder:
    """The configured `model` as a Coder (`coder_class`)."""
    made = coder_class(type(model))
    return model if made is type(model) else made(model, benchmark, seed)
