"""Canonical stream chunks: assemble them into a response, or replay a response as them."""

from __future__ import annotations

from typing import Any

from musubi.gateway.providers.base import chunk

__all__ = ["Accumulator", "replay_as_chunks"]


class Accumulator:
    """Builds the ``chat.completion`` a stream of chunks amounts to (for cache and usage)."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: dict[str, int] | None = None
        self.chunks = 0

    def feed(self, c: dict[str, Any]) -> None:
        self.chunks += 1
        self.id = self.id or c.get("id", "")
        self.model = self.model or c.get("model", "")
        if c.get("usage"):
            self.usage = c["usage"]
        for choice in c.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(
                    call.get("index", 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    @property
    def output_chars(self) -> int:
        args = sum(len(c["function"]["arguments"]) for c in self.calls.values())
        return sum(len(t) for t in self.text) + args

    def response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish or "stop"}],
        }
        if self.usage:
            out["usage"] = self.usage
        return out


def replay_as_chunks(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """A complete ``chat.completion`` as the chunks a stream of it would have sent."""
    id_, model = resp.get("id", ""), resp.get("model", "")
    choice = resp["choices"][0]
    message = choice.get("message", {})
    out = [chunk(id_, model, {"role": "assistant", "content": message.get("content") or ""})]
    if message.get("tool_calls"):
        calls = [{**c, "index": i} for i, c in enumerate(message["tool_calls"])]
        out.append(chunk(id_, model, {"tool_calls": calls}))
    out.append(chunk(id_, model, {}, choice.get("finish_reason") or "stop"))
    if resp.get("usage"):
        out.append({**chunk(id_, model, {}), "choices": [], "usage": resp["usage"]})
    return out
