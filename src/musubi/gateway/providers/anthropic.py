"""Anthropic Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from musubi.errors import InvalidInput
from musubi.gateway.anthropic_format import (
    decode_anthropic_stream,
    from_anthropic_response,
    to_anthropic_request,
)
from musubi.gateway.providers.base import Op, Provider

__all__ = ["Anthropic"]


class Anthropic(Provider):
    name: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"

    def url(self, op: Op, model: str, stream: bool) -> str:
        if op != "chat":
            raise InvalidInput(f"Anthropic models do not support {op}", field="model")
        return f"{self.base_url}/v1/messages"

    def headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-api-key": self.credential.api_key,
            "anthropic-version": str(self.credential.options.get("version", "2023-06-01")),
        }

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        return to_anthropic_request(body, model)

    def transform_response(self, op: Op, data: dict[str, Any], model: str) -> dict[str, Any]:
        return from_anthropic_response(data, model)

    async def decode_stream(
        self, events: AsyncIterator[tuple[str | None, str]], model: str
    ) -> AsyncIterator[dict[str, Any]]:
        async for c in decode_anthropic_stream(events, model, self.credential.name):
            yield c
