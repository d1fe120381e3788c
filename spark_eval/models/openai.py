"""OpenAI: Chat Completions and the Responses API; with `base_url`, any OpenAI-compatible server."""
from __future__ import annotations

from typing import Any

from spark_eval.models.base import GenerationParams, Message, ModelConfigError
from spark_eval.models.provider import ProviderModel, Reply, api_key_from, transient_sdk_error



class OpenAIModel(ProviderModel):
    """OpenAI's SDK against api.openai.com, vLLM's or llama.cpp's server, or Gemini's OpenAI endpoint.

    Args:
        api: `chat` (Chat Completions) or `responses` (the Responses API; GPT-5-Codex is served only there).
        base_url: another OpenAI-compatible server (None: OpenAI).
        api_key_env: the environment variable holding the key (None: the server needs no key).
        max_tokens_field: `max_tokens` or `max_completion_tokens` (OpenAI's reasoning models).
        json_mode: `json_schema` or `json_object` (servers that take a schema inside json_object).
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
        json_mode: str = "json_schema",
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
        key = api_key_from(api_key_env, self.name) if api_key_env else "no-key"
        import openai

        self._openai = openai
        self._client_args = {"api_key": key, "base_url": base_url, "max_retries": 0, "timeout": self.timeout_s}
        self._given_http_client = http_client

    @property
    def _client(self) -> Any:
        return self._of_this_loop("client", lambda: self._openai.AsyncOpenAI(**self._client_args,
                                                                    http_client=self._http_client(self._openai)))

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "api": self.api, "base_url": self.base_url}

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        if self.api == "responses":
            return await self._responses(messages, params)
        return await self._chat(messages, params)

    async def _chat(self, messages: list[Message], params: GenerationParams) -> Reply:
        request: dict[str, Any] = {"model": self.model, "messages": messages, self.max_tokens_field: params.max_tokens}
        optional = {"temperature": params.temperature, "seed": params.seed, "reasoning_effort": params.reasoning_effort}
        request.update({k: v for k, v in optional.items() if v is not None})
        if params.stop:
            request["stop"] = list(params.stop[:4])  # the API takes at most four
        if params.json_schema is not None:
            request["response_format"] = self._response_format(params.json_schema)
        response = await self._post("/chat/completions", {**request, **params.extra},
                                    self._openai.types.chat.ChatCompletion)
        choice = response.choices[0]
        usage = response.usage
        return Reply(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            request_id=response._request_id or response.id,
        )

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.json_mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": False}}

    async def _responses(self, messages: list[Message], params: GenerationParams) -> Reply:
        """The Responses API: system messages become `instructions`; it has no stop sequences."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        request: dict[str, Any] = {
            "model": self.model,
            "input": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
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
            finish = "length" if response.incomplete_details.reason == "max_output_tokens" else finish
        usage = response.usage
        if finish == "completed" and usage is not None and usage.output_tokens >= params.max_tokens:
            finish = "length"  # cut at the cap, though the server says `completed` (llama-server's Responses API)
        return Reply(
            text=response.output_text or "",
            finish_reason=finish,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            request_id=response._request_id or response.id,
        )

    async def _post(self, path: str, body: dict[str, Any], reply_type: type) -> Any:
        """POST a request body we built as plain JSON, read as `reply_type`: the SDK's typed `create` would walk it
        against its parameter types first, which costs more CPU per call than the rest of the harness
        (bench_models.py)."""
        return await self._client.post(path, body=body, cast_to=reply_type)

    def _retryable(self, error: BaseException) -> bool:
        return transient_sdk_error(self._openai, error)
