"""Fake upstreams following OpenAI's, Anthropic's and Bedrock's APIs, run on loopback with
uvicorn.

Knobs: ``latency`` (seconds), ``fail_every`` (every Nth call answers ``fail_status``),
``cut_after`` (a stream stops after that many chunks, without its end marker), and
``validate`` (check what MUSUBI sends to the OpenAI routes against OpenAI's OpenAPI spec).
``calls`` counts upstream calls; ``requests`` keeps their bodies and headers.
``usage_of`` (body → usage dict) replaces the fixed usage a chat call reports.
``gate`` (an asyncio.Event) holds requests, after their latency, while it is clear;
``answered`` keeps the bodies of requests answered to a client still connected, and
``dropped`` those whose client had gone away by then (no answer was delivered).
Bedrock (Converse and ConverseStream): requests must carry a SigV4 signature by one of
``aws_keys`` (access key id → secret), checked as AWS does; streams are real
``application/vnd.amazon.eventstream`` frames. ``stream_exception`` (type, message) is sent
as an exception message where ``cut_after`` cuts; ``corrupt_frame`` spoils that frame's CRC.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from musubi.gateway.providers.eventstream import encode as encode_event
from tests.loopback import LoopbackServer

__all__ = ["FakeUpstream", "serve"]


@dataclass
class FakeUpstream:
    name: str = "fake"
    latency: float = 0.0
    fail_every: int = 0
    fail_status: int = 500
    cut_after: int | None = None
    chunk_delay: float = 0.0
    retry_after: float | None = None
    aborted: int = 0  # streams whose client went away before the end
    reply: str = "Hello from the fake upstream."
    validate: Callable[[str, dict[str, Any]], None] | None = None
    calls: int = 0
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    held: int = 0
    inflight: int = 0
    max_inflight: int = 0  # the most requests this fake was working on at once
    answered: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    aws_keys: dict[str, str] = field(default_factory=dict)
    bedrock_paths: list[str] = field(default_factory=list)  # raw request paths
    stream_exception: tuple[str, str] | None = None
    corrupt_frame: int | None = None
    usage_of: Callable[[dict[str, Any]], dict[str, int]] | None = None

    async def _enter(self, request: Request, kind: str) -> tuple[dict[str, Any], Response | None]:
        self.calls += 1
        body = await request.json()
        self.requests.append((kind, body, dict(request.headers)))
        if self.validate is not None:
            self.validate(kind, body)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.gate is not None and not self.gate.is_set():
                self.held += 1
                await self.gate.wait()
                self.held -= 1
                await request.is_disconnected()  # resumes reading, so a closed socket is seen
                await asyncio.sleep(0.05)
                if await request.is_disconnected():
                    self.dropped.append(body)
                    return body, Response(status_code=499)
        finally:
            self.inflight -= 1
        self.answered.append(body)
        if self.fail_every and self.calls % self.fail_every == 0:
            err = {"error": {"message": f"{self.name} failed on purpose", "type": "server_error"}}
            headers = {} if self.retry_after is None else {"retry-after": str(self.retry_after)}
            return body, JSONResponse(err, self.fail_status, headers=headers)
        return body, None

    # -- OpenAI ----------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        body, failed = await self._enter(request, "chat")
        if failed:
            return failed
        model = body["model"]
        message: dict[str, Any] = {"role": "assistant", "content": self.reply}
        finish = "stop"
        if body.get("tools") and body["messages"][-1]["role"] == "user":
            fn = body["tools"][0]["function"]["name"]
            call = {"id": "call_1", "type": "function"}
            call["function"] = {"name": fn, "arguments": '{"city": "Paris"}'}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        elif (body.get("response_format") or {}).get("type") == "json_object":
            message["content"] = '{"answer": 42}'
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if self.usage_of is not None:
            usage = self.usage_of(body)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1}
        base["model"] = model
        chunks: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if message.get("tool_calls"):
            chunks.append({"tool_calls": [{"index": 0, **message["tool_calls"][0]}]})
        else:
            chunks += [{"content": w + " "} for w in self.reply.split()]
        events = [
            {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in chunks
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
        return self._stream(lines)

    def _stream(self, lines: list[str]) -> StreamingResponse:
        cut = self.cut_after

        async def gen() -> AsyncIterator[bytes]:
            done = False
            try:
                for i, line in enumerate(lines):
                    if cut is not None and i >= cut:
                        break  # the connection ends without the end marker
                    yield line.encode()
                    await asyncio.sleep(self.chunk_delay)
                done = True
            finally:
                if not done:
                    self.aborted += 1

        return StreamingResponse(gen(), media_type="text/event-stream")

    async def completions(self, request: Request) -> Response:
        body, failed = await self._enter(request, "completion")
        if failed:
            return failed
        return JSONResponse(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {"index": 0, "text": self.reply, "finish_reason": "stop", "logprobs": None}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }
        )

    async def embeddings(self, request: Request) -> Response:
        body, failed = await self._enter(request, "embedding")
        if failed:
            return failed
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
            for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return JSONResponse(
            {"object": "list", "model": body["model"], "data": data, "usage": usage}
        )

    # -- Anthropic -------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        body, failed = await self._enter(request, "messages")
        if failed:
            return failed
        assert request.headers.get("anthropic-version"), "anthropic-version header missing"
        tool = body.get("tools") and body["messages"][-1]["role"] == "user"
        if tool and isinstance(body["messages"][-1]["content"], list):
            tool = not any(b.get("type") == "tool_result" for b in body["messages"][-1]["content"])
        content: list[dict[str, Any]] = [{"type": "text", "text": self.reply}]
        stop = "end_turn"
        if tool:
            use = {"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"]}
            content = [{**use, "input": {"city": "Paris"}}]
            stop = "tool_use"
        usage = {"input_tokens": 12, "output_tokens": 6}
        msg = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"]}
        if not body.get("stream"):
            full = {**msg, "content": content, "stop_reason": stop, "stop_sequence": None}
            return JSONResponse({**full, "usage": usage})
        start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**start, "usage": {**usage, "output_tokens": 1}}},
            {"type": "ping"},
        ]
        if tool:
            block = {**content[0], "input": {}}
            events += [
                {"type": "content_block_start", "index": 0, "content_block": block},
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
                },
            ]
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w + " "},
                }
                for w in self.reply.split()
            ]
        events += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 6},
            },
            {"type": "message_stop"},
        ]
        return self._stream([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events])

    # -- Bedrock ---------------------------------------------------------------------------
    def _sigv4_problem(self, request: Request, body: bytes) -> str | None:
        """Why AWS would refuse this request's signature (None: it is valid)."""
        auth = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
            request.headers.get("authorization", ""),
        )
        if auth is None:
            return "Authorization header missing or malformed"
        key_id, date, region, service, signed, signature = auth.groups()
        secret = self.aws_keys.get(key_id)
        if secret is None:
            return "The security token included in the request is invalid."
        amz_date = request.headers.get("x-amz-date", "")
        names = signed.split(";")
        if not amz_date.startswith(date) or not {"host", "x-amz-date"} <= set(names):
            return "x-amz-date and host must be signed, with the credential scope's date"
        headers = "".join(f"{n}:{' '.join(request.headers.get(n, '').split())}\n" for n in names)
        pairs = sorted(p.split("=", 1) for p in request.url.query.split("&") if p)
        canonical = "\n".join(
            [
                request.method,
                # Non-S3 services sign the path URI-encoded once more than it is sent.
                quote(request.scope["raw_path"].decode(), safe="/-_.~"),
                "&".join("=".join(p) for p in pairs),
                headers,
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
        key = f"AWS4{secret}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "The request signature we calculated does not match the signature you provided."
        return None

    async def converse(self, request: Request) -> Response:
        return await self._bedrock(request, stream=False)

    async def converse_stream(self, request: Request) -> Response:
        return await self._bedrock(request, stream=True)

    async def _bedrock(self, request: Request, stream: bool) -> Response:
        body, failed = await self._enter(request, "converse-stream" if stream else "converse")
        if failed:
            return failed
        self.bedrock_paths.append(request.scope["raw_path"].decode())
        problem = self._sigv4_problem(request, await request.body())
        if problem is not None:
            kind = "InvalidSignatureException" if "signature" in problem else "AccessDenied"
            return JSONResponse({"message": problem}, 403, headers={"x-amzn-ErrorType": kind})
        tools = (body.get("toolConfig") or {}).get("tools") or []
        last = body["messages"][-1]
        use = None
        answered = any("toolResult" in b for b in last["content"])
        if tools and last["role"] == "user" and not answered:
            use = {"toolUseId": "tooluse_fake0001", "name": tools[0]["toolSpec"]["name"]}
        usage = {"inputTokens": 13, "outputTokens": 8, "totalTokens": 21}
        text = "Checking the weather." if use else self.reply
        stop = "tool_use" if use else "end_turn"
        if not stream:
            content: list[dict[str, Any]] = [{"text": text}]
            if use:
                content.append({"toolUse": {**use, "input": {"city": "Paris"}}})
            message = {"role": "assistant", "content": content}
            return JSONResponse(
                {
                    "output": {"message": message},
                    "stopReason": stop,
                    "usage": usage,
                    "metrics": {"latencyMs": 42},
                }
            )
        words = text.split(" ")
        events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        events += [
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            for piece in [words[0]] + [" " + w for w in words[1:]]
        ]
        events.append(("contentBlockStop", {"contentBlockIndex": 0}))
        if use:
            events.append(
                ("contentBlockStart", {"start": {"toolUse": use}, "contentBlockIndex": 1})
            )
            events += [
                ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": p}}})
                for p in ('{"city": ', '"Paris"}')
            ]
            events.append(("contentBlockStop", {"contentBlockIndex": 1}))
        events.append(("messageStop", {"stopReason": stop}))
        events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}))
        # Bedrock pads every event with a "p" field of varying length (hides token sizes).
        return self._eventstream(
            [
                encode_event(
                    {
                        ":event-type": name,
                        ":content-type": "application/json",
                        ":message-type": "event",
                    },
                    json.dumps({**payload, "p": "abcdefghij"[: 1 + i % 10]}).encode(),
                )
                for i, (name, payload) in enumerate(events)
            ]
        )

    def _eventstream(self, frames: list[bytes]) -> StreamingResponse:
        cut, exception, corrupt = self.cut_after, self.stream_exception, self.corrupt_frame

        async def gen() -> AsyncIterator[bytes]:
            done = False
            try:
                for i, frame in enumerate(frames):
                    if cut is not None and i >= cut:
                        if exception is not None:
                            yield encode_event(
                                {
                                    ":exception-type": exception[0],
                                    ":content-type": "application/json",
                                    ":message-type": "exception",
                                },
                                json.dumps({"message": exception[1]}).encode(),
                            )
                        break
                    if i == corrupt:  # one payload byte changed: the message CRC no longer holds
                        frame = frame[:-5] + bytes([frame[-5] ^ 0x01]) + frame[-4:]
                    # written in two pieces: a frame need not arrive in one read
                    yield frame[: len(frame) // 2]
                    yield frame[len(frame) // 2 :]
                    await asyncio.sleep(self.chunk_delay)
                done = True
            finally:
                if not done:
                    self.aborted += 1

        return StreamingResponse(gen(), media_type="application/vnd.amazon.eventstream")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/model/{model_id}/converse", self.converse, methods=["POST"]),
                Route("/model/{model_id}/converse-stream", self.converse_stream, methods=["POST"]),
            ]
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class serve:
    """``async with serve(fake) as base_url``: the fake on a loopback port."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(  # keep-alive: see tests/conftest.py
            fake.app(), host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=60
        )
        self.server = LoopbackServer(config)

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        self.server.stop()
        await self.task
