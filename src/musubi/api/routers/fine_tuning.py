"""OpenAI-compatible fine-tuning jobs (``/v1/fine_tuning/jobs``): create, list, retrieve,
cancel, events and checkpoints, as the ``openai`` SDK calls them.

The files are checked while the job is created; training runs on ``musubi worker --queue
finetune`` (:mod:`musubi.finetune.worker`). Jobs belong to the creating key's project and
user, like files and batches (:mod:`musubi.batch.ownership`). A succeeded job's model,
``ft:<base>:<tenant>:<suffix>``, is served to its tenant by the gateway.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.routers.files import list_json
from musubi.errors import InvalidInput
from musubi.finetune.bases import resolve_base
from musubi.finetune.service import (
    cancel_job,
    checkpoint_json,
    create_job,
    event_json,
    get_job,
    job_json,
    list_checkpoints,
    list_events,
    list_jobs,
    parse_method,
)

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])

Use = Annotated[Ctx, Depends(require("models:use", "project"))]
Limit = Annotated[int, Query(ge=1, le=100)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    training_file: str = Field(min_length=1, max_length=40)
    validation_file: str | None = Field(default=None, max_length=40)
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    integrations: list[dict[str, Any]] | None = None


@router.post("", summary="Create a fine-tuning job (OpenAI-compatible; LoRA/QLoRA)")
async def job_create(body: JobIn, ctx: Use) -> dict[str, Any]:
    if body.integrations:
        raise InvalidInput("integrations: none are supported", field="integrations")
    method, hp = parse_method(body.method, body.hyperparameters)
    async with ctx.db.transaction() as s:
        job = await create_job(
            ctx.db,
            s,
            ctx.principal,
            model=body.model,
            training_file=body.training_file,
            validation_file=body.validation_file,
            suffix=body.suffix,
            seed=body.seed,
            method=method,
            hyperparameters=hp,
            metadata=body.metadata,
            check_base=lambda name: resolve_base(ctx.state.settings, name),
        )
        return job_json(job)


@router.get("", summary="List fine-tuning jobs, newest first (OpenAI-compatible)")
async def job_list(
    ctx: Use,
    after: str | None = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    async with ctx.db.read() as s:
        rows, more = await list_jobs(s, ctx.principal, after=after, limit=limit)
    return list_json([job_json(j) for j in rows], more)


@router.get("/{job_id}", summary="A fine-tuning job (OpenAI-compatible)")
async def job_get(job_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.read() as s:
        return job_json(await get_job(s, ctx.principal, job_id))


@router.post("/{job_id}/cancel", summary="Cancel a fine-tuning job (OpenAI-compatible)")
async def job_cancel(job_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.transaction() as s:
        return job_json(await cancel_job(s, ctx.principal, job_id))


@router.get("/{job_id}/events", summary="A job's events, newest first (OpenAI-compatible)")
async def job_events(
    job_id: str, ctx: Use, after: str | None = None, limit: Limit = 20
) -> dict[str, Any]:
    async with ctx.db.read() as s:
        rows, more = await list_events(s, ctx.principal, job_id, after=after, limit=limit)
    return {"object": "list", "data": [event_json(e) for e in rows], "has_more": more}


@router.get("/{job_id}/checkpoints", summary="A job's checkpoints (OpenAI-compatible)")
async def job_checkpoints(
    job_id: str, ctx: Use, after: str | None = None, limit: Limit = 10
) -> dict[str, Any]:
    async with ctx.db.read() as s:
        job = await get_job(s, ctx.principal, job_id)
        rows, more = await list_checkpoints(s, ctx.principal, job_id, after=after, limit=limit)
    return list_json([checkpoint_json(c, job) for c in rows], more)
