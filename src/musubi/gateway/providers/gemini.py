"""Google Gemini: ``generateContent`` and ``streamGenerateContent?alt=sse``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from musubi.gateway.providers.base import Op, Provider, StreamCut, chunk, text_of

__all__ = ["Gemini"]

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


class Gemini(Provider):
    name: ClassVar[str] = "gemini"
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com/v1beta"

    def url(self, op: Op, model: str, stream: bool) -> str:
        if op == "embedding":
            return f"{self.base_url}/models/{model}:batchEmbedContents"
        if stream:
            return f"{self.base_url}/models/{model}:streamGenerateContent?alt=sse"
        return f"{self.base_url}/models/{model}:generateContent"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "x-goog-api-key": self.credential.api_key}

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        if op == "embedding":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return {
                "requests": [
                    {"model": f"models/{model}", "content": {"parts": [{"text": t}]}}
                    for t in inputs
                ]
            }
        contents: list[dict[str, Any]] = []
        system: list[str] = []
        names: dict[str, str] = {}
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        for m in messages:
            role = m.get("role")
            if role in ("system", "developer"):
                system.append(text_of(m.get("content")))
                continue
            if role == "tool":
                name = names.get(m.get("tool_call_id", ""), "tool")
                resp = {"name": name, "response": {"content": text_of(m.get("content"))}}
                contents.append({"role": "user", "parts": [{"functionResponse": resp}]})
                continue
            parts: list[dict[str, Any]] = []
            text = text_of(m.get("content"))
            if text:
                parts.append({"text": text})
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                names[call.get("id", "")] = fn["name"]
                args = json.loads(fn.get("arguments") or "{}")
                parts.append({"functionCall": {"name": fn["name"], "args": args}})
            contents.append({"role": "model" if role == "assistant" else "user", "parts": parts})
        out: dict[str, Any] = {"contents": contents}
        if system:
            out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: dict[str, Any] = {}
        for src, dst in (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("max_tokens", "maxOutputTokens"),
            ("max_completion_tokens", "maxOutputTokens"),
        ):
            if body.get(src) is not None:
                config[dst] = body[src]
        if body.get("stop"):
            stop = body["stop"]
            config["stopSequences"] = [stop] if isinstance(stop, str) else stop
        if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        if config:
            out["generationConfig"] = config
        if body.get("tools"):
            decls = [
                {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description", ""),
                    "parameters": t["function"].get("parameters", {"type": "object"}),
                }
                for t in body["tools"]
            ]
            out["tools"] = [{"functionDeclarations": decls}]
        return out

    def _message(self, candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text, calls = "", []
        for part in candidate.get("content", {}).get("parts", []):
            if "text" in part:
                text += part["text"]
            elif "functionCall" in part:
                fc = part["functionCall"]
                calls.append(
                    {
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {
                            "name": fc["name"],
                            "arguments": json.dumps(fc.get("args", {})),
                        },
                    }
                )
        return text, calls

    @staticmethod
    def _usage(data: dict[str, Any]) -> dict[str, int]:
        meta = data.get("usageMetadata", {})
        i, o = int(meta.get("promptTokenCount", 0)), int(meta.get("candidatesTokenCount", 0))
        return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}

    def transform_response(self, op: Op, data: dict[str, Any], model: str) -> dict[str, Any]:
        if op == "embedding":
            vectors = [e.get("values", []) for e in data.get("embeddings", [])]
            return {
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        candidate = (data.get("candidates") or [{}])[0]
        text, calls = self._message(candidate)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        finish = _FINISH.get(candidate.get("finishReason", "STOP"), "stop")
        if calls:
            message["tool_calls"] = calls
            finish = "tool_calls"
        return {
            "id": data.get("responseId") or f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self._usage(data),
        }

    async def decode_stream(
        self, events: AsyncIterator[tuple[str | None, str]], model: str
    ) -> AsyncIterator[dict[str, Any]]:
        id_ = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        usage: dict[str, int] | None = None
        finished = False
        first = True
        async for _name, data in events:
            ev = json.loads(data)
            candidate = (ev.get("candidates") or [{}])[0]
            text, calls = self._message(candidate)
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            first = False
            if text:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls)]
            reason = candidate.get("finishReason")
            finish = ("tool_calls" if calls else _FINISH.get(reason, "stop")) if reason else None
            finished = finished or reason is not None
            yield chunk(id_, model, delta, finish)
            if "usageMetadata" in ev:
                usage = self._usage(ev)
        if not finished:
            raise StreamCut(self.credential.name, "the stream ended without a finishReason")
        if usage is not None:
            yield {**chunk(id_, model, {}), "choices": [], "usage": usage}
