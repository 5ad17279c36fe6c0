"""Pure translations between the Anthropic Messages format and the canonical OpenAI one.

Used both ways: by the Anthropic provider (canonical → Anthropic upstream) and by the
``/v1/messages`` route (an Anthropic client's request → canonical, and back).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from musubi.errors import InvalidInput
from musubi.gateway.providers.base import chunk, one_line, text_of

__all__ = [
    "STOP_TO_FINISH",
    "AnthropicStreamEncoder",
    "decode_anthropic_stream",
    "from_anthropic_request",
    "from_anthropic_response",
    "to_anthropic_request",
    "to_anthropic_response",
]

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content or []:
        if part.get("type") == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            out.append(_image_block(part["image_url"]["url"]))
    return out


def to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Canonical (OpenAI chat) request → Anthropic Messages request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for m in body.get("messages", []):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(text_of(m.get("content")))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": text_of(m.get("content")),
            }
            add("user", [block])
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                args = fn.get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": json.loads(args) if isinstance(args, str) else args,
                    }
                )
            add("assistant", blocks)
        else:
            add("user", _blocks(m.get("content")))
    rf = body.get("response_format") or {}
    if rf.get("type") in ("json_object", "json_schema"):
        system.append("Answer with one JSON object only, no prose.")
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or 4096,
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("tools"):
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
            if t.get("type") == "function"
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, str) and body.get("tools"):
        out["tool_choice"] = {"type": {"required": "any"}.get(choice, choice)}
    elif isinstance(choice, dict):
        out["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    return out


def from_anthropic_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Anthropic Messages response → canonical ``chat.completion``."""
    text = "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))},
        }
        for b in data.get("content", [])
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    usage = data.get("usage", {})
    i, o = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {
        "id": data.get("id", ""),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": STOP_TO_FINISH.get(data.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
    }


async def decode_anthropic_stream(
    events: AsyncIterator[tuple[str | None, str]], model: str, provider: str
) -> AsyncIterator[dict[str, Any]]:
    """Anthropic stream events → canonical chunks (the last one carries ``usage``)."""
    from musubi.gateway.providers.base import StreamCut, UpstreamStatus

    id_, usage_in, usage_out, finish = "", 0, 0, None
    tool_index: dict[int, int] = {}
    async for _name, data in events:
        ev = json.loads(data)
        kind = ev.get("type")
        if kind == "message_start":
            msg = ev["message"]
            id_ = msg.get("id", "")
            usage_in = int(msg.get("usage", {}).get("input_tokens", 0))
            yield chunk(id_, model, {"role": "assistant", "content": ""})
        elif kind == "content_block_start" and ev["content_block"].get("type") == "tool_use":
            block = ev["content_block"]
            n = tool_index.setdefault(ev["index"], len(tool_index))
            call = {"index": n, "id": block["id"], "type": "function"}
            call["function"] = {"name": block["name"], "arguments": ""}
            yield chunk(id_, model, {"tool_calls": [call]})
        elif kind == "content_block_delta":
            delta = ev["delta"]
            if delta.get("type") == "text_delta":
                yield chunk(id_, model, {"content": delta["text"]})
            elif delta.get("type") == "input_json_delta":
                n = tool_index.get(ev["index"], 0)
                args = {"index": n, "function": {"arguments": delta["partial_json"]}}
                yield chunk(id_, model, {"tool_calls": [args]})
        elif kind == "message_delta":
            finish = STOP_TO_FINISH.get(ev.get("delta", {}).get("stop_reason") or "", "stop")
            usage_out = int(ev.get("usage", {}).get("output_tokens", usage_out))
        elif kind == "message_stop":
            yield chunk(id_, model, {}, finish or "stop")
            total = usage_in + usage_out
            last = {**chunk(id_, model, {}), "choices": []}
            last["usage"] = {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": total,
            }
            yield last
            return
        elif kind == "error":
            err = ev.get("error")
            text = err.get("message") if isinstance(err, dict) else None
            message = one_line(text) if isinstance(text, str) else "an error event"
            raise UpstreamStatus(provider, 502, message, None)
    raise StreamCut(provider, "the stream ended without message_stop")


# -- the /v1/messages route: an Anthropic client's side ---------------------------------


def _need(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise InvalidInput(f"{field}: {message}", field=field)


def from_anthropic_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic client's request → canonical request; names the bad field."""
    _need(isinstance(body.get("model"), str), "model", "a model name is required")
    _need(isinstance(body.get("max_tokens"), int), "max_tokens", "an integer is required")
    msgs = body.get("messages")
    _need(isinstance(msgs, list) and len(msgs) > 0, "messages", "a non-empty list is required")
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": text_of(system)})
    for i, m in enumerate(msgs or []):
        _need(isinstance(m, dict), f"messages.{i}", "must be an object")
        role, content = m.get("role"), m.get("content")
        _need(role in ("user", "assistant"), f"messages.{i}.role", "must be user or assistant")
        _need(isinstance(content, str | list), f"messages.{i}.content", "string or list")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image":
                src = block.get("source", {})
                url = src.get("url") or f"data:{src.get('media_type')};base64,{src.get('data')}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "tool_use":
                fn = {"name": block["name"], "arguments": json.dumps(block.get("input", {}))}
                calls.append({"id": block["id"], "type": "function", "function": fn})
            elif kind == "tool_result":
                result = block.get("content", "")
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id", ""),
                        "content": text_of(result),
                    }
                )
            else:
                _need(False, f"messages.{i}.content", f"unsupported block type {kind!r}")
        if parts or calls:
            msg: dict[str, Any] = {"role": role, "content": parts or None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    req: dict[str, Any] = {
        "model": body["model"],
        "messages": out,
        "max_tokens": body["max_tokens"],
    }
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            req[key] = body[key]
    if body.get("stop_sequences"):
        req["stop"] = body["stop_sequences"]
    if body.get("tools"):
        req["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema", {"type": "object"}),
                },
            }
            for t in body["tools"]
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            req["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            req["tool_choice"] = {"any": "required"}.get(kind or "auto", kind)
    return req


def to_anthropic_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """Canonical ``chat.completion`` → Anthropic Messages response."""
    choice = resp["choices"][0]
    message: dict[str, Any] = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": text_of(message["content"])})
    for call in message.get("tool_calls") or []:
        fn = call["function"]
        content.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": fn["name"],
                "input": json.loads(fn.get("arguments") or "{}"),
            }
        )
    usage = resp.get("usage") or {}
    return {
        "id": resp.get("id") or "msg_musubi",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
    }


class AnthropicStreamEncoder:
    """Canonical chunks → Anthropic stream events, in Anthropic's order."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.id = message_id
        self.started = False
        self.block: tuple[int, str] | None = None  # (index, "text" | "tool_use")
        self.next_index = 0
        self.finish: str | None = None
        self.usage = {"input_tokens": 0, "output_tokens": 0}

    def _start(self) -> list[dict[str, Any]]:
        self.started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close(self) -> list[dict[str, Any]]:
        if self.block is None:
            return []
        index = self.block[0]
        self.block = None
        return [{"type": "content_block_stop", "index": index}]

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        self.block = (self.next_index, kind)
        self.next_index += 1
        out.append({"type": "content_block_start", "index": self.block[0], "content_block": block})
        return out

    def feed(self, c: dict[str, Any]) -> list[dict[str, Any]]:
        out = [] if self.started else self._start()
        if c.get("usage"):
            self.usage = {
                "input_tokens": c["usage"].get("prompt_tokens", 0),
                "output_tokens": c["usage"].get("completion_tokens", 0),
            }
        for choice in c.get("choices", []):
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block is None or self.block[1] != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                assert self.block is not None
                d = {"type": "text_delta", "text": text}
                out.append({"type": "content_block_delta", "index": self.block[0], "delta": d})
            for call in delta.get("tool_calls") or []:
                if call.get("id"):
                    block = {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call.get("function", {}).get("name", ""),
                        "input": {},
                    }
                    out += self._open("tool_use", block)
                args = call.get("function", {}).get("arguments")
                if args and self.block is not None:
                    d = {"type": "input_json_delta", "partial_json": args}
                    out.append({"type": "content_block_delta", "index": self.block[0], "delta": d})
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def end(self) -> list[dict[str, Any]]:
        out = ([] if self.started else self._start()) + self._close()
        stop = FINISH_TO_STOP.get(self.finish or "stop", "end_turn")
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": dict(self.usage),
            }
        )
        out.append({"type": "message_stop"})
        return out
