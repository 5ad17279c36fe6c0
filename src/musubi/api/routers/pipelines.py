"""A project's CI/CD pipelines: configure (secrets write-only), trigger a run, and see
its result (followed by the integrations worker; ``?refresh=true`` reads it now)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.routers.integrations import _project, box_of
from musubi.integrations import pipelines as service

router = APIRouter(tags=["integrations"])

Read = Annotated[Ctx, Depends(require("integrations:read", "project"))]
Write = Annotated[Ctx, Depends(require("integrations:write", "project"))]
BASE = "/v1/projects/{project_id}/pipelines"


class PipelineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(
        max_length=20,
        description="An installed pipeline kind: azure_pipelines, gitlab, or a plugin's "
        "(entry points musubi.pipelines)",
    )
    target: str = Field(
        max_length=200, description="Azure DevOps project name, or GitLab project path/id"
    )
    base_url: str = Field(
        default="",
        max_length=500,
        description="Azure: https://dev.azure.com/<organization>; GitLab: empty for "
        "gitlab.com. Private addresses only where MUSUBI_EGRESS_ALLOW allows",
    )
    pipeline: str = Field(default="", max_length=40, description="Azure: the pipeline id")
    ref: str = Field(default="main", max_length=200, description="Branch or tag to run")
    token: str | None = Field(
        default=None,
        description="Write-only. Azure: a PAT (Build read & execute); GitLab: an access "
        "token with read_api (to follow the pipeline). Omitted: keep the stored",
    )
    trigger_token: str | None = Field(
        default=None, description="Write-only. GitLab: the project's pipeline trigger token"
    )
    enabled: bool = True


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str | None = Field(default=None, max_length=200, description="Default: the pipeline's")
    variables: dict[str, Annotated[str, Field(max_length=10_000)]] = Field(
        default_factory=dict, description="Pipeline variables, name -> value"
    )
    run_id: str | None = Field(
        default=None,
        max_length=40,
        description="An orchestrator run of the project: its events show the result",
    )


@router.get(BASE, summary="List a project's pipelines with their last run")
async def list_pipelines(project_id: str, ctx: Read) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:read")
    async with ctx.db.read() as s:
        rows = await service.list_pipelines(s, project_id)
        last = await service.last_runs(s, [r.id for r in rows])
        return {"items": [service.public_pipeline(r, None, last.get(r.id)) for r in rows]}


@router.put(BASE + "/{name}", summary="Configure a pipeline of the project (create or replace)")
async def set_pipeline(project_id: str, name: str, body: PipelineIn, ctx: Write) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:write")
    box = box_of(ctx)
    egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
    async with ctx.db.transaction() as s:
        row = await service.set_pipeline(
            s, box, egress, project_id=project_id, name=name, **body.model_dump()
        )
        return service.public_pipeline(row, box)


@router.get(BASE + "/{name}", summary="A pipeline's configuration and last run")
async def get_pipeline(project_id: str, name: str, ctx: Read) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:read")
    async with ctx.db.read() as s:
        row = await service.get_pipeline(s, project_id, name)
        last = await service.last_runs(s, [row.id])
        return service.public_pipeline(row, box_of(ctx), last.get(row.id))


@router.delete(BASE + "/{name}", summary="Remove a pipeline (and the record of its runs)")
async def delete_pipeline(project_id: str, name: str, ctx: Write) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:write")
    async with ctx.db.transaction() as s:
        return service.public_pipeline(await service.delete_pipeline(s, project_id, name))


@router.post(BASE + "/{name}/runs", status_code=201, summary="Trigger a run of the pipeline")
async def trigger(project_id: str, name: str, body: TriggerIn, ctx: Write) -> dict[str, Any]:
    """Starts a run on the CI/CD service; the integrations worker follows it until it
    completes. The service's refusal (a bad token, a variable not settable at queue time)
    is answered 502 with its message."""
    await _project(ctx, project_id, "integrations:write")
    async with ctx.db.read() as s:
        row = await service.get_pipeline(s, project_id, name)
    egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
    run = await service.trigger_run(
        ctx.db, box_of(ctx), egress, row, ref=body.ref, variables=body.variables, run_id=body.run_id
    )
    return service.public_run(run, row.name)


@router.get(BASE + "/{name}/runs", summary="The runs MUSUBI triggered, newest first")
async def list_runs(
    project_id: str,
    name: str,
    ctx: Read,
    run_id: Annotated[str | None, Query(description="Only those of this orchestrator run")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many")] = 50,
) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:read")
    async with ctx.db.read() as s:
        row = await service.get_pipeline(s, project_id, name)
        runs = await service.list_runs(s, row, run_id=run_id, limit=limit)
        return {"items": [service.public_run(r, row.name) for r in runs]}


@router.get(BASE + "/{name}/runs/{run}", summary="One triggered run and its result")
async def get_run(
    project_id: str,
    name: str,
    run: str,
    ctx: Read,
    refresh: Annotated[
        bool, Query(description="Read the status from the CI/CD service now, if still running")
    ] = False,
) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:read")
    async with ctx.db.read() as s:
        row = await service.get_pipeline(s, project_id, name)
        found = await service.get_run(s, row, run)
    if refresh:
        egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
        found = await service.refresh_run(ctx.db, box_of(ctx), egress, row, run)
    return service.public_run(found, row.name)
