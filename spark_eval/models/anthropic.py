"""Anthropic: the Messages API (Claude Haiku 4.5, Claude 3.7 Sonnet)."""
from __future__ import annotations

import json
from typing import Any

from spark_eval.models.base import GenerationParams, Message
from spark_eval.models.provider import ProviderModel, Reply, api_key_from, usable
from spark_eval.models.retry import Endpoint
from spark_eval.records import CAPPED

REPLY_TOOL = "reply"
ANTHROPIC_URL = "https://api.anthropic.com"


class AnthropicModel(ProviderModel):
    """Claude through the Messages API: the system prompt goes apart, `max_tokens` is required.

    Structured output is a forced call of one tool whose input schema is the requested schema, which
    every Claude model with tools supports.

    Args:
        base_url: another Messages-API server (None: Anthropic).
        api_key_env: the environment variable holding the key.
        http_client: an `httpx2.AsyncClient` to send requests through (tests inject transports here).
        **kwargs: see ProviderModel.
    """

    provider = "anthropic"
    remote = True
    default_temperature = 1.0

    def __init__(
        self, base_url: str | None = None, api_key_env: str = "ANTHROPIC_API_KEY", http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url
        self.api_key_env = api_key_env
        key = api_key_from(api_key_env, self.name)
        import anthropic

        self._anthropic = self._sdk = anthropic
        self._client_args = {"api_key": key, "base_url": base_url, "max_retries": 0, "timeout": self.timeout_s}
        self._given_http_client = http_client

    @property
    def _client(self) -> Any:
        return self._of_this_loop("client", lambda: self._anthropic.AsyncAnthropic(**self._client_args,
                                                                    http_client=self._http_client(self._anthropic)))

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "base_url": self.base_url}

    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.base_url or ANTHROPIC_URL, self.model, self.api_key_env, "model.params")

    async def _call(self, messages: list[Message], params: GenerationParams) -> Reply:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "messages": [m for m in messages if m["role"] != "system"],
        }
        if system:
            request["system"] = system
        if params.stop:
            request["stop_sequences"] = list(params.stop)
        if params.json_schema is not None:
            request["tools"] = [{"name": REPLY_TOOL, "description": "Give the reply.", "input_schema": params.json_schema}]
            request["tool_choice"] = {"type": "tool", "name": REPLY_TOOL}
        body = dict(params.extra)
        if params.temperature is not None:
            body["temperature"] = params.temperature  # not a named SDK argument any more; the API takes it
        raw = await self._client.messages.with_raw_response.create(**request, extra_body=body or None)
        response = await raw.parse()
        reply = Reply(text=_reply_text(response.content),
                      finish_reason=CAPPED if response.stop_reason == "max_tokens" else response.stop_reason,
                      request_id=raw.headers.get("request-id") or response.id, **messages_usage(response.usage))
        return usable(reply, params)


def messages_usage(usage: Any) -> dict[str, int]:
    """A Messages API reply's billed counts. Its `input_tokens` leaves out the prompt tokens read from the prompt cache
    (`cache_read_input_tokens`) and written to it (`cache_creation_input_tokens`): all three make the prompt."""
    read, written = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    return {"input_tokens": (usage.input_tokens or 0) + read + written, "output_tokens": usage.output_tokens or 0,
            "cached_input_tokens": read, "cache_write_tokens": written}


def _reply_text(blocks: list[Any]) -> str:
    """The text blocks joined; a forced tool call's input as JSON."""
    for block in blocks:
        if block.type == "tool_use" and block.name == REPLY_TOOL:
            return json.dumps(block.input)
    return "".join(block.text for block in blocks if block.type == "text")
