"""OpenAI: Chat Completions and the Responses API; with `base_url`, any OpenAI-compatible server."""
from __future__ import annotations

from typing import Any

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply, api_key_from, cut_at_stop, usable
from spark_eval.models.retry import Endpoint
from spark_eval.records import CAPPED

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_JSON_MODE = "json_schema"

class OpenAIModel(ProviderModel):
    """OpenAI's SDK against api.openai.com, vLLM's or llama.cpp's server, or Gemini's OpenAI endpoint.

    Args:
        api: `chat` (Chat Completions) or `responses` (the Responses API; GPT-5-Codex is served only there).
        base_url: another OpenAI-compatible server (None: OpenAI).
        api_key_env: the environment variable holding the key (None: the server needs no key).
        max_tokens_field: `max_tokens` or `max_completion_tokens` (OpenAI's reasoning models).
        json_mode: `json_schema` or `json_object` (servers that take a schema inside json_object); a reply differs
            by it, so a mode other than the default is part of the cache key.
        http_client: an `httpx2.AsyncClient` to send requests through (tests inject transports here).
        **kwargs: see ProviderModel.
    """

    provider = "openai"
    remote = True
    default_temperature = 1.0

    def __init__(
        self,
        api: str = "chat",
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_tokens_field: str = "max_tokens",
        json_mode: str = DEFAULT_JSON_MODE,
        http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if api not in ("chat", "responses"):
            raise ModelConfigError(f"model.api={api!r} is unknown; use chat or responses")
        self.api = api
        self.base_url = base_url
        self.max_tokens_field = max_tokens_field
        self.json_mode = json_mode
        self.api_key_env = api_key_env
        key = api_key_from(api_key_env, self.name) if api_key_env else "no-key"
        import openai

        self._openai = self._sdk = openai
        self._client_args = {"api_key": key, "base_url": base_url, "max_retries": 0, "timeout": self.timeout_s}
        self._given_http_client = http_client

    @property
    def _client(self) -> Any:
        return self._of_this_loop("client", lambda: self._openai.AsyncOpenAI(**self._client_args,
                                                                    http_client=self._http_client(self._openai)))

    def identity(self) -> dict[str, Any]:
        found = {**super().identity(), "api": self.api, "base_url": self.base_url}
        if self.json_mode != DEFAULT_JSON_MODE:  # the default's keys stay as they were: old caches still answer
            found["json_mode"] = self.json_mode
        return found

    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.base_url or OPENAI_URL, self.model, self.api_key_env,
                        "model.params, model.max_tokens_field and model.json_mode")

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        if self.api == "responses":
            return await self._responses(messages, params)
        return await self._chat(messages, params)

    async def _chat(self, messages: list[Message], params: GenerationParams) -> Reply:
        request: dict[str, Any] = {"model": self.model, "messages": messages, self.max_tokens_field: params.max_tokens}
        optional = {"temperature": params.temperature, "seed": params.seed, "reasoning_effort": params.reasoning_effort}
        request.update({k: v for k, v in optional.items() if v is not None})
        if params.stop:
            request["stop"] = list(params.stop[:4])  # the API takes at most four; the rest are cut below
        if params.json_schema is not None:
            request["response_format"] = self._response_format(params.json_schema)
        response = await self._post("/chat/completions", {**request, **params.extra},
                                    self._openai.types.chat.ChatCompletion)
        choice = response.choices[0] if response.choices else None
        text, stopped = cut_at_stop((choice.message.content if choice else None) or "", params.stop[4:])
        reply = Reply(text=text, finish_reason="stop" if stopped else choice.finish_reason if choice else None,
                      request_id=response._request_id or response.id, **chat_usage(response.usage))
        return usable(reply, params)

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.json_mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": False}}

    async def _responses(self, messages: list[Message], params: GenerationParams) -> Reply:
        """The Responses API: system messages become `instructions`, the others input messages, each with its
        `type` (optional on OpenAI's API; llama.cpp's server refuses an assistant turn without it, as the structured
        reply's retry sends); it takes no stop sequences, so the reply is cut at the first one here."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        request: dict[str, Any] = {
            "model": self.model,
            "input": [{"type": "message", "role": m["role"], "content": m["content"]}
                      for m in messages if m["role"] != "system"],
            "max_output_tokens": params.max_tokens,
        }
        if system:
            request["instructions"] = system
        if params.temperature is not None:
            request["temperature"] = params.temperature
        if params.reasoning_effort:
            request["reasoning"] = {"effort": params.reasoning_effort}
        if params.json_schema is not None:
            request["text"] = {"format": {"type": "json_schema", "name": "reply", "schema": params.json_schema,
                                          "strict": False}}
        response = await self._post("/responses", {**request, **params.extra}, self._openai.types.responses.Response)
        finish = response.status
        if response.status == "incomplete" and response.incomplete_details is not None:
            finish = CAPPED if response.incomplete_details.reason == "max_output_tokens" else finish
        usage = response.usage
        if finish == "completed" and usage is not None and params.max_tokens and usage.output_tokens >= params.max_tokens:
            finish = CAPPED  # cut at the cap, though the server says `completed` (llama-server's Responses API)
        text, stopped = cut_at_stop(response.output_text or "", params.stop)
        reply = Reply(text=text, finish_reason="stop" if stopped else finish,
                      request_id=response._request_id or response.id, **responses_usage(usage))
        return usable(reply, params)

    async def _post(self, path: str, body: dict[str, Any], reply_type: type) -> Any:
        """POST a request body we built as plain JSON, read as `reply_type`: the SDK's typed `create` would walk it
        against its parameter types first, which costs more CPU per call than the rest of the harness
        (bench_models.py)."""
        return await self._client.post(path, body=body, cast_to=reply_type)


def chat_usage(usage: Any) -> dict[str, int]:
    """A Chat Completions reply's billed counts: `prompt_tokens` (of them `prompt_tokens_details.cached_tokens` read
    from the prompt cache), `completion_tokens` (of them `completion_tokens_details.reasoning_tokens` thinking). A
    server that leaves thinking out of `completion_tokens` (Gemini's OpenAI endpoint may) still counts it in
    `total_tokens`: what `total_tokens` holds beyond prompt and completion is counted as output, as thinking."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    beyond = max(0, (usage.total_tokens or 0) - prompt - completion)
    return {"input_tokens": prompt, "output_tokens": completion + beyond,
            "cached_input_tokens": _detail(usage, "prompt_tokens_details", "cached_tokens"),
            "reasoning_tokens": max(_detail(usage, "completion_tokens_details", "reasoning_tokens"), beyond)}


def responses_usage(usage: Any) -> dict[str, int]:
    """A Responses API reply's billed counts: `input_tokens` (of them `input_tokens_details.cached_tokens` cached),
    `output_tokens` (of them `output_tokens_details.reasoning_tokens` thinking)."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0,
            "cached_input_tokens": _detail(usage, "input_tokens_details", "cached_tokens"),
            "reasoning_tokens": _detail(usage, "output_tokens_details", "reasoning_tokens")}


def _detail(usage: Any, part: str, count: str) -> int:
    return int(getattr(getattr(usage, part, None), count, None) or 0)

