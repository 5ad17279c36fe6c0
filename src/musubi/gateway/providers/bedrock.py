"""AWS Bedrock through the Converse API, signed with SigV4.

Credential: ``api_key`` is the secret access key; ``options``: ``access_key_id``,
``region`` (default us-east-1) and optionally ``session_token``. Streams are served from
one Converse call replayed as chunks (ConverseStream's binary event stream is not used).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from musubi.errors import InvalidInput
from musubi.gateway.providers.base import Op, Provider, UpstreamRequest, text_of
from musubi.gateway.providers.sigv4 import sign_v4

__all__ = ["Bedrock"]

_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


class Bedrock(Provider):
    name: ClassVar[str] = "bedrock"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.region = str(self.credential.options.get("region", "us-east-1"))
        if not self.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"

    def url(self, op: Op, model: str, stream: bool) -> str:
        if op != "chat":
            raise InvalidInput(f"Bedrock models here do not support {op}", field="model")
        return f"{self.base_url}/model/{quote(model, safe='')}/converse"

    def sign(self, request: UpstreamRequest) -> None:
        opts = self.credential.options
        url = urlsplit(request.url)
        added = sign_v4(
            method=request.method,
            host=url.netloc,
            path=url.path,
            query=url.query,
            headers={"content-type": "application/json"},
            body=request.content,
            access_key=str(opts.get("access_key_id", "")),
            secret_key=self.credential.api_key,
            region=self.region,
            service="bedrock",
            session_token=opts.get("session_token"),
        )
        request.headers.update(added)

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        system: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []

        def add(role: str, blocks: list[dict[str, Any]]) -> None:
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].extend(blocks)
            else:
                messages.append({"role": role, "content": blocks})

        for m in body.get("messages", []):
            role = m.get("role")
            text = text_of(m.get("content"))
            if role in ("system", "developer"):
                system.append({"text": text})
            elif role == "tool":
                result = {"toolUseId": m.get("tool_call_id", ""), "content": [{"text": text}]}
                add("user", [{"toolResult": result}])
            else:
                blocks: list[dict[str, Any]] = [{"text": text}] if text else []
                for call in m.get("tool_calls") or []:
                    fn = call["function"]
                    use = {
                        "toolUseId": call["id"],
                        "name": fn["name"],
                        "input": json.loads(fn.get("arguments") or "{}"),
                    }
                    blocks.append({"toolUse": use})
                add("assistant" if role == "assistant" else "user", blocks)
        out: dict[str, Any] = {"messages": messages}
        if system:
            out["system"] = system
        config: dict[str, Any] = {}
        for src, dst in (
            ("max_tokens", "maxTokens"),
            ("max_completion_tokens", "maxTokens"),
            ("temperature", "temperature"),
            ("top_p", "topP"),
        ):
            if body.get(src) is not None:
                config[dst] = body[src]
        if body.get("stop"):
            stop = body["stop"]
            config["stopSequences"] = [stop] if isinstance(stop, str) else stop
        if config:
            out["inferenceConfig"] = config
        if body.get("tools"):
            specs = [
                {
                    "toolSpec": {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description", "") or "tool",
                        "inputSchema": {"json": t["function"].get("parameters", {})},
                    }
                }
                for t in body["tools"]
            ]
            out["toolConfig"] = {"tools": specs}
        return out

    def transform_response(self, op: Op, data: dict[str, Any], model: str) -> dict[str, Any]:
        content = data.get("output", {}).get("message", {}).get("content", [])
        text = "".join(b.get("text", "") for b in content if "text" in b)
        calls = [
            {
                "id": b["toolUse"]["toolUseId"],
                "type": "function",
                "function": {
                    "name": b["toolUse"]["name"],
                    "arguments": json.dumps(b["toolUse"].get("input", {})),
                },
            }
            for b in content
            if "toolUse" in b
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        usage = data.get("usage", {})
        i, o = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": _FINISH.get(data.get("stopReason", ""), "stop"),
                }
            ],
            "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
        }

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        from musubi.gateway.chunks import replay_as_chunks  # (a cycle at import time)

        full = await self.send(op, {**body, "stream": False}, model)
        for c in replay_as_chunks(full):
            yield c
