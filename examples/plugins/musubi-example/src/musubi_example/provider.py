"""``example_echo``: a provider that answers locally with the last user message.

A real provider implements the pure transforms (``url``, ``transform_request``,
``transform_response``, ``decode_stream``) and lets the base class do the HTTP; this one
needs no network, so it overrides :meth:`send` and :meth:`stream` instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from musubi.errors import UpstreamError
from musubi.gateway.providers.base import Op, Provider, chunk


def _reply(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else body.get("prompt", "")
    text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    return f"echo: {text}"


def _usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion = len(reply.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class EchoProvider(Provider):
    name: ClassVar[str] = "example_echo"
    needs_key: ClassVar[bool] = False

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        if op != "chat":
            raise UpstreamError(self.credential.name, f"example_echo does not do {op}")
        reply = _reply(body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(body, reply),
        }

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        answer = await self.send(op, body, model)
        id_, created = answer["id"], answer["created"]
        reply: str = answer["choices"][0]["message"]["content"]
        yield chunk(id_, model, {"role": "assistant", "content": ""}, created=created)
        for i, word in enumerate(reply.split(" ")):
            yield chunk(id_, model, {"content": (" " if i else "") + word}, created=created)
        yield chunk(id_, model, {}, "stop", created=created)
        yield {**chunk(id_, model, {}, created=created), "choices": [], "usage": answer["usage"]}
