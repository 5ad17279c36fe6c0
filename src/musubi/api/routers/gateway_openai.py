"""OpenAI-compatible endpoints: the official ``openai`` SDKs work with only base_url set."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.gateway_http import data_line, gateway_of, json_response, run_call, sse
from musubi.errors import InvalidInput, NotFound, UpstreamError
from musubi.gateway.listing import list_models as tenant_models
from musubi.gateway.tokens import count_request_tokens, method_for
from musubi.gateway.validation import validate_chat

router = APIRouter(tags=["gateway"])

Json = Annotated[dict[str, Any], Body()]
Use = Annotated[Ctx, Depends(require("models:use", "own"))]


def _stream_error(exc: UpstreamError) -> bytes:
    err = {"message": exc.message, "type": "api_error", "param": None, "code": "upstream_error"}
    return data_line({"error": err})


async def _openai(ctx: Ctx, request: Request, op: Any, body: dict[str, Any]) -> Response:
    outcome = await run_call(ctx, request, op, body)
    if outcome.chunks is None:
        assert outcome.data is not None
        return json_response(outcome, outcome.data)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def encode(c: dict[str, Any]) -> list[bytes]:
        if not c.get("choices") and c.get("usage") and not wants_usage:
            return []
        if not wants_usage:
            c = {k: v for k, v in c.items() if k != "usage"}
        return [data_line(c)]

    return sse(outcome, encode, lambda: [b"data: [DONE]\n\n"], _stream_error)


@router.post("/v1/chat/completions", summary="Chat completion (OpenAI-compatible)")
async def chat_completions(body: Json, request: Request, ctx: Use) -> Response:
    validate_chat(body)
    return await _openai(ctx, request, "chat", body)


@router.post("/v1/completions", summary="Text completion (OpenAI-compatible)")
async def completions(body: Json, request: Request, ctx: Use) -> Response:
    if not isinstance(body.get("model"), str):
        raise InvalidInput("model: a model name is required", field="model")
    if not isinstance(body.get("prompt"), str | list):
        raise InvalidInput("prompt: a string or a list of strings is required", field="prompt")
    return await _openai(ctx, request, "completion", body)


@router.post("/v1/embeddings", summary="Embeddings (OpenAI-compatible)")
async def embeddings(body: Json, request: Request, ctx: Use) -> Response:
    if not isinstance(body.get("model"), str):
        raise InvalidInput("model: a model name is required", field="model")
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        raise InvalidInput("input: a string or a non-empty list is required", field="input")
    return await _openai(ctx, request, "embedding", body)


@router.get("/v1/models", summary="Models this key may use (OpenAI-compatible)")
async def list_models(ctx: Use) -> JSONResponse:
    table = await gateway_of(ctx).table(ctx.tenant_id)
    data = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": m.owned_by}
        for m in tenant_models(table)
    ]
    return JSONResponse({"object": "list", "data": data})


class EstimateIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    models: list[str] = Field(default_factory=list, description="several models at once")
    messages: list[dict[str, Any]] | None = None
    prompt: str | list[str] | None = None
    input: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=0)


@router.post("/v1/musubi/estimate", summary="Tokens and cost of a request, before running it")
async def estimate(body: EstimateIn, ctx: Use) -> dict[str, Any]:
    names = body.models or ([body.model] if body.model else [])
    if not names:
        raise InvalidInput("model or models: at least one model is required", field="models")
    gw = gateway_of(ctx)
    table = await gw.table(ctx.tenant_id)
    request = body.model_dump(exclude_none=True)
    out = []
    for name in names:
        info = gw.catalogue.get(name)
        if info is None:
            deps = table.by_model.get(table.config.aliases.get(name, name))
            info = deps[0].model if deps else None
        if info is None:
            raise NotFound(f"model {name!r} is not in the catalogue", available=[])
        # a tokenizer's first load takes up to a few seconds: not on the event loop
        tokens_in = await asyncio.to_thread(count_request_tokens, request, info)
        tokens_out = body.max_tokens or 0
        out.append(
            {
                "model": name,
                "provider": info.provider,
                "input_tokens": tokens_in,
                "max_output_tokens": tokens_out,
                "cost": round(info.cost(tokens_in, tokens_out), 8),
                "input_cost": round(info.cost(tokens_in, 0), 8),
                "context_window": info.context,
                "fits": info.context == 0 or tokens_in + tokens_out <= info.context,
                "method": method_for(info),
            }
        )
    return {"estimates": out}
