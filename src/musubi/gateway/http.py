"""What the compatible routes share: turn an authenticated request into a gateway call
and its outcome into a response (JSON, or server-sent events in the client's format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from musubi.errors import InvalidInput, MusubiError, UpstreamError
from musubi.gateway.pipeline import Call, Gateway, Outcome
from musubi.gateway.providers.base import Op

if TYPE_CHECKING:
    from musubi.api.deps import Ctx

__all__ = [
    "gateway_of",
    "outcome_headers",
    "run_call",
    "sse",
    "validate_chat",
    "validate_counts",
]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_COUNTS = ("max_tokens", "max_completion_tokens", "n")
"""Parameters the gateway itself reads as counts (the quota reserves max_tokens)."""


def gateway_of(ctx: Ctx) -> Gateway:
    gw = ctx.state.gateway
    if gw is None:
        raise MusubiError("the gateway is not running in this process")
    return gw


def validate_chat(body: dict[str, Any]) -> None:
    """Refuse a malformed chat request, naming the field (answered as 400)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidInput("model: a model name is required", field="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages: a non-empty list of messages is required", field="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise InvalidInput(f"messages.{i}: must be an object", field=f"messages.{i}")
        if m.get("role") not in _ROLES:
            raise InvalidInput(
                f"messages.{i}.role: must be one of {', '.join(_ROLES)}", field=f"messages.{i}.role"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidInput(
                f"messages.{i}.content: must be a string or a list of parts",
                field=f"messages.{i}.content",
            )
        if content is None and m["role"] in ("user", "system") and not m.get("tool_calls"):
            raise InvalidInput(f"messages.{i}.content: is required", field=f"messages.{i}.content")


def validate_counts(body: dict[str, Any]) -> None:
    """Refuse ``max_tokens`` (and the other counts read here) unless absent, null or a
    positive integer: a string would fail the quota's estimate, a negative one lower it."""
    for name in _COUNTS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInput(f"{name}: must be a positive integer", field=name)


async def run_call(ctx: Ctx, request: Request, op: Op, body: dict[str, Any]) -> Outcome:
    validate_counts(body)
    headers = request.headers
    call = Call(
        principal=ctx.principal,
        op=op,
        body=body,
        request_id=getattr(request.state, "request_id", None),
        task=headers.get("x-musubi-task"),
        use_cache=headers.get("x-musubi-cache", "").lower() not in ("no", "off", "false", "0"),
    )
    if op == "completion" and call.stream:
        call.use_cache = False  # completion chunks are not chat chunks: no replay
    return await gateway_of(ctx).run(call, ctx.state.quotas, ctx.state.ledger)


def outcome_headers(outcome: Outcome) -> dict[str, str]:
    return {"x-musubi-route": outcome.route_header, **outcome.headers}


def sse(
    outcome: Outcome,
    encode: Callable[[dict[str, Any]], list[bytes]],
    end: Callable[[], list[bytes]],
    error: Callable[[UpstreamError], bytes],
) -> StreamingResponse:
    """Relay canonical chunks as events; a broken upstream ends with an error event."""
    assert outcome.chunks is not None
    chunks = outcome.chunks

    async def body() -> AsyncIterator[bytes]:
        try:
            async for c in chunks:
                for piece in encode(c):
                    yield piece
        except UpstreamError as exc:
            yield error(exc)
            return
        finally:
            await chunks.aclose()
        for piece in end():
            yield piece

    headers = {**outcome_headers(outcome), "cache-control": "no-cache"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def json_response(outcome: Outcome, data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers=outcome_headers(outcome))


def data_line(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
