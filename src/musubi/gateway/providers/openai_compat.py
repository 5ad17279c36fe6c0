"""OpenAI and every server that speaks its API: Azure OpenAI, Mistral, Groq, Together,
DeepSeek, Ollama, vLLM, llama.cpp server and any other OpenAI-compatible endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from musubi.gateway.providers.base import Op, Provider, StreamCut, UpstreamStatus

__all__ = [
    "AzureOpenAI",
    "DeepSeek",
    "Groq",
    "Mistral",
    "Ollama",
    "OpenAI",
    "OpenAICompatible",
    "Together",
]

_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}


_REASONING = ("o1", "o3", "o4", "gpt-5")


class OpenAI(Provider):
    name: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"

    def url(self, op: Op, model: str, stream: bool) -> str:
        return self.base_url + _PATHS[op]

    def headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if self.credential.api_key:
            h["authorization"] = f"Bearer {self.credential.api_key}"
        return h

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if v is not None}
        out["model"] = model
        if self.name == "openai" and model.startswith(_REASONING) and "max_tokens" in out:
            # OpenAI's reasoning models refuse max_tokens (a budget-granted one included)
            out.setdefault("max_completion_tokens", out.pop("max_tokens"))
        if out.get("stream") and op != "embedding":
            # Always ask for usage: the ledger needs it; the route strips it if not asked.
            out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
        else:
            out.pop("stream_options", None)
        return out

    def transform_response(self, op: Op, data: dict[str, Any], model: str) -> dict[str, Any]:
        return data

    async def decode_stream(
        self, events: AsyncIterator[tuple[str | None, str]], model: str
    ) -> AsyncIterator[dict[str, Any]]:
        async for _event, data in events:
            if data.strip() == "[DONE]":
                return
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                raise StreamCut(self.credential.name, "invalid JSON in the stream") from exc
            if isinstance(parsed, dict) and "error" in parsed:
                msg = self.error_message(data.encode())
                raise UpstreamStatus(self.credential.name, 502, msg, None)
            yield parsed
        raise StreamCut(self.credential.name, "the stream ended without [DONE]")


class OpenAICompatible(OpenAI):
    """Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio…); set base_url."""

    name: ClassVar[str] = "openai_compatible"
    default_base_url: ClassVar[str] = "http://127.0.0.1:8000/v1"
    needs_key: ClassVar[bool] = False


class Mistral(OpenAI):
    name: ClassVar[str] = "mistral"
    default_base_url: ClassVar[str] = "https://api.mistral.ai/v1"


class Groq(OpenAI):
    name: ClassVar[str] = "groq"
    default_base_url: ClassVar[str] = "https://api.groq.com/openai/v1"


class Together(OpenAI):
    name: ClassVar[str] = "together"
    default_base_url: ClassVar[str] = "https://api.together.xyz/v1"


class DeepSeek(OpenAI):
    name: ClassVar[str] = "deepseek"
    default_base_url: ClassVar[str] = "https://api.deepseek.com/v1"


class Ollama(OpenAI):
    name: ClassVar[str] = "ollama"
    default_base_url: ClassVar[str] = "http://127.0.0.1:11434/v1"
    needs_key: ClassVar[bool] = False


class AzureOpenAI(OpenAI):
    """``{base_url}/openai/deployments/{deployment}/…?api-version=…`` with ``api-key``.

    The deployment name is the upstream model name (map it with the credential's models).
    """

    name: ClassVar[str] = "azure"
    default_base_url: ClassVar[str] = ""

    def url(self, op: Op, model: str, stream: bool) -> str:
        version = self.credential.options.get("api_version", "2024-10-21")
        return f"{self.base_url}/openai/deployments/{model}{_PATHS[op]}?api-version={version}"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "api-key": self.credential.api_key}

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        out = super().transform_request(op, body, model)
        out.pop("model", None)  # the deployment in the URL names it
        return out
