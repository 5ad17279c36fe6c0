"""AWS Bedrock through the Converse API, signed with SigV4.

Credential: ``api_key`` is the secret access key; ``options``: ``access_key_id``,
``region`` (default us-east-1) and optionally ``session_token``. A streamed chat goes to
ConverseStream (``/converse-stream``), which answers in AWS's binary event stream rather
than server-sent events: the frames are decoded by :mod:`.eventstream` as they arrive and
turned into the same ``chat.completion.chunk`` dicts as every other provider's stream, so
usage settlement, cut detection and the Anthropic re-encoding need nothing Bedrock-specific.
An exception message in the stream (throttling, a model stream error…) or a corrupt frame
ends it with an upstream error, like a cut connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import aiohttp

from musubi.errors import InvalidInput
from musubi.gateway.providers.base import (
    Op,
    Provider,
    StreamCut,
    UpstreamRequest,
    UpstreamStatus,
    chunk,
    one_line,
    text_of,
)
from musubi.gateway.providers.eventstream import Decoder, EventStreamError, Message
from musubi.gateway.providers.sigv4 import sign_v4

__all__ = ["Bedrock", "stream_event"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# ConverseStream's exception events and the HTTP status Bedrock documents for each: the
# status decides, before any data was relayed, whether MUSUBI retries or falls back.
_EXCEPTION_STATUS = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "modelTimeoutException": 408,
    "validationException": 400,
}


def stream_event(provider: str, message: Message) -> tuple[str | None, str]:
    """One event-stream message as an (event type, JSON payload) pair.

    An ``exception`` message (a modelled error such as ``throttlingException``) or an
    ``error`` message (the framing's own error, told in headers) raises
    :class:`UpstreamStatus`: the stream cannot go on after either.
    """
    kind = message.header(":message-type") or "event"
    payload = message.payload.decode("utf-8", "replace")
    if kind == "exception":
        name = message.header(":exception-type") or "exception"
        try:
            parsed = json.loads(payload)
            text = str(parsed.get("message") or parsed.get("Message") or "")
        except (ValueError, AttributeError):
            text = ""
        status = _EXCEPTION_STATUS.get(name, 502)
        raise UpstreamStatus(provider, status, one_line(f"{name} in the stream: {text}"), None)
    if kind == "error":
        code = message.header(":error-code") or "error"
        text = message.header(":error-message") or ""
        raise UpstreamStatus(provider, 502, one_line(f"{code} in the stream: {text}"), None)
    return message.header(":event-type"), payload


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
        action = "converse-stream" if stream else "converse"
        return f"{self.base_url}/model/{quote(model, safe='')}/{action}"

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

    async def decode_stream(
        self, events: AsyncIterator[tuple[str | None, str]], model: str
    ) -> AsyncIterator[dict[str, Any]]:
        """ConverseStream events → canonical chunks: text and tool-call deltas, the finish
        at ``messageStop``, then usage from ``metadata``; no ``messageStop``: cut."""
        name = self.credential.name
        id_ = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        tools: dict[int, int] = {}  # contentBlockIndex → tool call index
        finished = False
        async for event, data in events:
            try:
                ev = json.loads(data) if data else {}
            except ValueError as exc:
                raise StreamCut(name, f"invalid JSON in the {event} event") from exc
            if not isinstance(ev, dict):
                raise StreamCut(name, f"the {event} event is not a JSON object")
            block = int(ev.get("contentBlockIndex", 0))
            if event == "messageStart":
                yield chunk(id_, model, {"role": "assistant", "content": ""})
            elif event == "contentBlockStart":
                use = (ev.get("start") or {}).get("toolUse")
                if use:
                    n = tools.setdefault(block, len(tools))
                    fn = {"name": use.get("name", ""), "arguments": ""}
                    call = {"index": n, "id": use.get("toolUseId", ""), "type": "function"}
                    yield chunk(id_, model, {"tool_calls": [{**call, "function": fn}]})
            elif event == "contentBlockDelta":
                delta = ev.get("delta") or {}
                if delta.get("text"):
                    yield chunk(id_, model, {"content": delta["text"]})
                elif "toolUse" in delta:
                    n = tools.setdefault(block, len(tools))
                    args = {"arguments": (delta["toolUse"] or {}).get("input", "")}
                    yield chunk(id_, model, {"tool_calls": [{"index": n, "function": args}]})
            elif event == "messageStop":
                finished = True
                yield chunk(id_, model, {}, _FINISH.get(ev.get("stopReason", ""), "stop"))
            elif event == "metadata" and "usage" in ev:
                usage = ev["usage"]
                i, o = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
                total = int(usage.get("totalTokens", i + o))
                counts = {"prompt_tokens": i, "completion_tokens": o, "total_tokens": total}
                yield {**chunk(id_, model, {}), "choices": [], "usage": counts}
        if not finished:
            raise StreamCut(name, "the stream ended without messageStop")

    async def stream_events(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[tuple[str | None, str]]:
        """Event-stream frames where other providers send server-sent events."""
        name = self.credential.name
        decoder = Decoder()
        async for data in response.content.iter_any():
            try:
                messages = decoder.feed(data)
            except EventStreamError as exc:
                raise StreamCut(name, f"corrupt event-stream frame: {exc}") from exc
            for message in messages:
                yield stream_event(name, message)
        if decoder.pending:
            raise StreamCut(name, f"the stream ended inside a frame ({decoder.pending} bytes)")
