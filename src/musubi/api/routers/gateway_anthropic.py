"""Anthropic-compatible ``/v1/messages`` and ``/v1/messages/count_tokens``: the ``anthropic``
SDK and Claude Code work with only the base URL set. Streams follow Anthropic's event order
exactly."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from musubi.api.deps import Ctx, require
from musubi.api.gateway_http import gateway_of, json_response, run_call, sse
from musubi.errors import UpstreamError
from musubi.gateway.anthropic_format import (
    AnthropicStreamEncoder,
    from_anthropic_request,
    to_anthropic_response,
)
from musubi.gateway.tokens import count_request_tokens, method_for

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


@router.post("/v1/messages/count_tokens", summary="Count a message's tokens (Anthropic-compatible)")
async def count_tokens(
    body: Annotated[dict[str, Any], Body()],
    ctx: Annotated[Ctx, Depends(require("models:use", "own"))],
) -> Response:
    """Input tokens of a ``/v1/messages`` request, counted offline for the model it would
    route to (the method is in ``x-musubi-token-method``: Anthropic's own models are
    estimated). A model this key cannot call is a 404, as for ``/v1/messages``."""
    canonical = from_anthropic_request({**body, "max_tokens": 0})  # it takes no max_tokens
    table = await gateway_of(ctx).table(ctx.tenant_id)
    model = table.plan(canonical["model"]).groups[0][0]
    # a tokenizer's first load takes up to a few seconds: not on the event loop
    tokens = await asyncio.to_thread(count_request_tokens, canonical, model)
    return JSONResponse(
        {"input_tokens": tokens}, headers={"x-musubi-token-method": method_for(model)}
    )
