"""OpenAI-compatible Batch API (``/v1/batches``): create, retrieve, list, cancel.

A batch runs on the job queue (``MUSUBI_QUEUE``), each line through the gateway as the
key that created it. ``metadata.priority`` (an integer as a string, default 0) puts a
batch's lines ahead of lower-priority lines of the same tenant. Batches belong to the
creating key's project and user, like files (:mod:`musubi.batch.ownership`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.gateway_http import gateway_of
from musubi.api.routers.files import list_json
from musubi.batch.service import (
    JobRef,
    batch_json,
    cancel_batch,
    counts,
    create_batch,
    get_batch,
    list_batches,
)
from musubi.errors import InvalidInput

router = APIRouter(prefix="/v1/batches", tags=["batch"])
log = logging.getLogger("musubi.batch")

Use = Annotated[Ctx, Depends(require("models:use", "project"))]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1, max_length=40)
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


def _priority(metadata: dict[str, str] | None) -> int:
    raw = (metadata or {}).get("priority", "0")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            "metadata.priority: must be an integer", field="metadata.priority"
        ) from None
    if not -100 <= value <= 100:
        raise InvalidInput(
            "metadata.priority: must be between -100 and 100", field="metadata.priority"
        )
    return value


async def _offer(ctx: Ctx, jobs: list[JobRef]) -> None:
    queue = ctx.state.queue
    if queue is None or not jobs:
        return
    try:
        await queue.submit(jobs)
    except Exception:  # the job rows are committed: the workers' sweep will find them
        log.exception("batch: offering %d jobs to the queue failed", len(jobs))


@router.post("", summary="Create a batch from an uploaded JSONL file (OpenAI-compatible)")
async def batch_create(body: BatchIn, ctx: Use) -> dict[str, Any]:
    table = await gateway_of(ctx).table(ctx.tenant_id)
    async with ctx.db.transaction() as s:
        batch, jobs = await create_batch(
            ctx.db,
            s,
            ctx.principal,
            table,
            input_file_id=body.input_file_id,
            endpoint=body.endpoint,
            completion_window=body.completion_window,
            metadata=body.metadata,
            priority=_priority(body.metadata),
        )
        result = batch_json(batch, await counts(s, batch))
    await _offer(ctx, jobs)
    return result


@router.get("", summary="List batches, newest first (OpenAI-compatible)")
async def batch_list(
    ctx: Use, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    async with ctx.db.read() as s:
        rows, more = await list_batches(s, ctx.principal, after=after, limit=limit)
        data = [batch_json(b, await counts(s, b)) for b in rows]
    return list_json(data, more)


@router.get("/{batch_id}", summary="A batch, with its progress (OpenAI-compatible)")
async def batch_get(batch_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.read() as s:
        batch = await get_batch(s, ctx.principal, batch_id)
        return batch_json(batch, await counts(s, batch))


@router.post("/{batch_id}/cancel", summary="Cancel a batch (OpenAI-compatible)")
async def batch_cancel(batch_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.transaction() as s:
        batch, jobs = await cancel_batch(s, ctx.principal, batch_id)
        result = batch_json(batch, await counts(s, batch))
    await _offer(ctx, jobs)
    return result
