"""Anthropic-compatible ``/v1/messages``: the ``anthropic`` SDK and Claude Code work with
only the base URL set. Streams follow Anthropic's event order exactly."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from musubi.api.deps import Ctx, require
from musubi.errors import UpstreamError
from musubi.gateway.anthropic_format import (
    AnthropicStreamEncoder,
    from_anthropic_request,
    to_anthropic_response,
)
from musubi.gateway.http import json_response, run_call, sse

router = APIRouter(tags=["gateway"])


def _event(ev: dict[str, Any]) -> bytes:
    data = json.dumps(ev, separators=(",", ":"))
    return f"event: {ev['type']}\ndata: {data}\n\n".encode()


@router.post("/v1/messages", summary="Messages (Anthropic-compatible)")
async def messages(
    body: Annotated[dict[str, Any], Body()],
    request: Request,
    ctx: Annotated[Ctx, Depends(require("models:use", "own"))],
) -> Response:
    canonical = from_anthropic_request(body)
    outcome = await run_call(ctx, request, "chat", canonical)
    model = body["model"]
    if outcome.chunks is None:
        assert outcome.data is not None
        return json_response(outcome, to_anthropic_response(outcome.data, model))
    encoder = AnthropicStreamEncoder(model, f"msg_{uuid.uuid4().hex[:24]}")

    def encode(c: dict[str, Any]) -> list[bytes]:
        return [_event(ev) for ev in encoder.feed(c)]

    def error(exc: UpstreamError) -> bytes:
        return _event({"type": "error", "error": {"type": "api_error", "message": exc.message}})

    return sse(outcome, encode, lambda: [_event(ev) for ev in encoder.end()], error)
