"""What the compatible routes share: turn an authenticated request into a gateway call
and its outcome into a response (JSON, or server-sent events in the client's format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from musubi.errors import MusubiError, UpstreamError
from musubi.gateway.pipeline import Call, Gateway, Outcome
from musubi.gateway.providers.base import Op
from musubi.gateway.validation import validate_counts

if TYPE_CHECKING:
    from musubi.api.deps import Ctx

__all__ = [
    "data_line",
    "gateway_of",
    "json_response",
    "outcome_headers",
    "run_call",
    "sse",
]


def gateway_of(ctx: Ctx) -> Gateway:
    gw = ctx.state.gateway
    if gw is None:
        raise MusubiError("the gateway is not running in this process")
    return gw


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
