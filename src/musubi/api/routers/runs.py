"""REST routes of runs: estimate, create, list, show, approve, cancel, and the event stream.

Runs belong to a project: every route loads the project (or the run, then its project) in
the caller's tenant and checks the permission on it, so another tenant's run, or one of a
project a key is not restricted to, is a 404 or a 403 like every project route. Creating a
run also needs ``models:use``: its calls go through the gateway as the calling key.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.context import bind_tenant
from musubi.errors import Conflict, InvalidInput, MusubiError
from musubi.orchestrator import service
from musubi.orchestrator.estimate import estimate_run
from musubi.orchestrator.models import FINISHED, Run
from musubi.orchestrator.runner import Orchestrator, knowledge_db
from musubi.orchestrator.steps import (
    PLAN,
    OutsideRepo,
    StepInput,
    repo_file,
    single_steps,
    step_of,
)
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project

__all__ = [
    "RunIn",
    "approve_as",
    "estimate_as",
    "orchestrator_of",
    "router",
    "show_as",
    "start_as",
]

router = APIRouter(tags=["runs"])

EVENT_POLL_S = 0.2
HEARTBEAT_S = 10.0  # a comment line while nothing happens: proxies and clients keep the stream


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idea: str = Field(
        default="",
        max_length=4000,
        description="the feature idea; the change request (change); the module path in the "
        "repository (reverse); task IDs, space-separated (implement); a branch (review); "
        "unused by steering",
    )
    feature: str | None = Field(
        default=None, max_length=64, description="file name slug (default: from the idea)"
    )
    steps: list[str] = Field(
        default_factory=lambda: list(PLAN),
        description="stages, in order: some of requirements, design, tasks; or one of "
        "change, reverse, steering, implement, review",
    )
    budget: float | None = Field(default=None, ge=0, description="USD; refused if over")
    auto_approve: bool = Field(default=False, description="no approval gate between stages")
    models: dict[str, str] = Field(default_factory=dict, description="step -> model override")
    max_output_tokens: int | None = Field(
        default=None, ge=16, le=100_000, description="cap of each answer (default: per step)"
    )


def orchestrator_of(request: Request) -> Orchestrator:
    orch: Orchestrator | None = getattr(request.app.state, "orchestrator", None)
    if orch is None:
        raise MusubiError("the orchestrator is not running in this process")
    return orch


async def _project(ctx: Ctx, project_id: str, perm: str) -> Project:
    async with ctx.db.read() as s:
        project = await get_one(s, Project, project_id, "project")
    ctx.check(perm, team_id=project.team_id, project_id=project.id)
    return project


async def _run(ctx: Ctx, run_id: str, perm: str) -> Run:
    async with ctx.db.read() as s:
        run = await service.get_run(s, run_id)
        project = await get_one(s, Project, run.project_id, "project")
    ctx.check(perm, team_id=project.team_id, project_id=project.id)
    return run


async def _root(project: Project) -> Path:
    if not project.repo_path or not await asyncio.to_thread(Path(project.repo_path).is_dir):
        raise Conflict(
            f"project {project.id!r} has no repository on the server; set repo_path",
            field="repo_path",
        )
    return Path(project.repo_path)


def _steps(names: list[str]) -> tuple[str, ...]:
    if len(names) == 1 and names[0] in single_steps():
        return (names[0],)
    bad = [n for n in names if n not in PLAN]
    if bad or not names or list(names) != [n for n in PLAN if n in names]:
        raise InvalidInput(
            f"steps: a run does some of {', '.join(PLAN)}, in that order, or one of "
            f"{', '.join(single_steps())} alone",
            field="steps",
        )
    return tuple(names)


def _task_ids(idea: str, root: Path) -> list[str]:
    """The task IDs of an implement run's idea, each a task of the project."""
    from musubi.sdd.project import load_project

    wanted = [t for t in re.split(r"[\s,]+", idea.strip()) if t]
    known = {t.id for t in load_project(root).tasks}
    unknown = [t for t in wanted if t not in known]
    if unknown or not wanted:
        raise InvalidInput(
            f"idea: {', '.join(unknown) or 'nothing'} is no task of the project's task "
            f"documents (known: {', '.join(sorted(known)[:20]) or 'none'})",
            field="idea",
        )
    return list(dict.fromkeys(wanted))


def _git_steps(body: RunIn, steps: tuple[str, ...], root: Path) -> tuple[str, tuple[str, ...]]:
    """implement and review: the repository checked, the feature slug, the step rows."""
    from musubi.orchestrator.implement import git_refusal
    from musubi.orchestrator.review import branch_ref

    if steps == ("implement",):
        refused = git_refusal(root)
        if refused:
            raise Conflict(refused, field="repo_path")
        tasks = _task_ids(body.idea, root)
        feature = service.feature_slug("implement " + " ".join(tasks), body.feature)
        return feature, tuple(f"implement:{t}" for t in tasks)
    from musubi.git import run_git

    if run_git(root, "rev-parse", "--is-inside-work-tree") is None:
        raise Conflict(
            "the project's repository is not a git repository: review reads a branch",
            field="repo_path",
        )
    if branch_ref(root, body.idea.strip()) is None:
        raise InvalidInput(
            f"idea: {body.idea!r} is no branch of the project's repository", field="idea"
        )
    return service.feature_slug("review " + body.idea.replace("/", " "), body.feature), steps


def _feature(body: RunIn, steps: tuple[str, ...], root: Path) -> str:
    """The run's feature slug, after checking the idea the steps need."""
    if steps == ("steering",):
        return service.feature_slug("steering", body.feature)
    if not body.idea.strip():
        what = {
            "change": "the change request",
            "reverse": "the module path",
            "implement": "the task IDs",
            "review": "the branch",
        }
        raise InvalidInput(
            f"idea: {what.get(steps[0], 'the feature idea')} is required", field="idea"
        )
    if steps == ("reverse",):
        module = body.idea.strip().strip("/")
        try:
            exists = (
                bool(module) and ".." not in module.split("/") and repo_file(root, module).exists()
            )
        except OutsideRepo:
            exists = False
        if not exists or Path(module).is_absolute():
            raise InvalidInput(
                f"idea: {body.idea!r} is no file or folder of the project's repository",
                field="idea",
            )
        return service.feature_slug(module.replace("/", " ").replace(".", " "), body.feature)
    return service.feature_slug(body.idea, body.feature)


def _idea(body: RunIn) -> str:
    idea = body.idea.strip()
    return idea.strip("/") if body.steps == ["reverse"] else idea


async def _estimate(
    ctx: Ctx, project: Project, body: RunIn
) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """The feature slug, the estimate and the run's step rows."""
    from musubi.api.gateway_http import gateway_of

    steps = _steps(body.steps)
    unknown = sorted(set(body.models) - set(steps))
    if unknown:
        raise InvalidInput(f"models: {', '.join(unknown)} is no step of this run", field="models")
    root = await _root(project)
    feature = await asyncio.to_thread(_feature, body, steps, root)
    if steps in (("implement",), ("review",)):
        feature, steps = await asyncio.to_thread(_git_steps, body, steps, root)
    table = await gateway_of(ctx).table(ctx.tenant_id)
    async with ctx.db.read() as s:
        past = await service.past_output(s, steps)
    index_db = knowledge_db(ctx.state.settings.home, ctx.tenant_id, project.id)
    inp = StepInput(idea=_idea(body), feature=feature, index_db=index_db)
    try:
        est = await estimate_run(table, root, inp, steps, body.models, body.max_output_tokens, past)
    except OutsideRepo:
        raise
    except Conflict as exc:  # a step that cannot start here (its branch has no change ...)
        raise Conflict(exc.message, field="idea") from exc
    return feature, est, steps


@router.post(
    "/v1/projects/{project_id}/runs/estimate", summary="Tokens and cost of a run, before it"
)
async def estimate(
    project_id: str, body: RunIn, ctx: Annotated[Ctx, Depends(require("runs:read", "project"))]
) -> dict[str, Any]:
    return await estimate_as(ctx, project_id, body)


async def estimate_as(ctx: Ctx, project_id: str, body: RunIn) -> dict[str, Any]:
    """The estimate of a run ``body`` would start (routes and MCP tools share it)."""
    project = await _project(ctx, project_id, "runs:read")
    feature, est, _ = await _estimate(ctx, project, body)
    within = body.budget is None or est["cost"] <= body.budget
    return {"feature": feature, **est, "budget": body.budget, "within_budget": within}


@router.post(
    "/v1/projects/{project_id}/runs",
    status_code=status.HTTP_201_CREATED,
    summary="Start a run (requirements, design, tasks)",
)
async def create(
    project_id: str,
    body: RunIn,
    request: Request,
    ctx: Annotated[Ctx, Depends(require("runs:write", "project"))],
) -> dict[str, Any]:
    return await start_as(ctx, orchestrator_of(request), project_id, body)


async def start_as(ctx: Ctx, orch: Orchestrator, project_id: str, body: RunIn) -> dict[str, Any]:
    """Estimate, check the budget, store and start a run as the caller."""
    project = await _project(ctx, project_id, "runs:write")
    ctx.check("models:use", team_id=project.team_id, project_id=project.id)
    feature, est, steps = await _estimate(ctx, project, body)
    root = await _root(project)
    for name in est["steps"][:1]:
        refused = await asyncio.to_thread(step_of(name["step"])[0].refuse, root, feature)
        if refused:
            raise Conflict(refused, field="steps")
    first = est["steps"][0]
    if not first["fits"]:  # later steps are checked exactly before their call
        raise Conflict(
            f"the {first['step']} prompt ({first['input_tokens']} tokens, with up to "
            f"{first['output_tokens']} to answer) does not fit the context window of "
            f"{first['model']}; shorten the idea or steering, or choose a larger model",
            field="models",
        )
    async with ctx.db.transaction() as s:
        run = await service.create_run(
            s,
            ctx.principal,
            project_id=project.id,
            idea=_idea(body),
            feature=feature,
            steps=steps,
            estimate=est,
            budget=body.budget,
            auto_approve=body.auto_approve,
            models=body.models,
            max_output_tokens=body.max_output_tokens,
        )
        if orch.drive:  # held by this process from the start: no other takes it up first
            run.worker = orch.worker
            run.lease_until = orch.leases.until()
        out = service.run_out(run)
    orch.submit(ctx.tenant_id, out["id"])
    return out


@router.get("/v1/projects/{project_id}/runs", summary="List a project's runs")
async def list_runs(
    project_id: str, ctx: Annotated[Ctx, Depends(require("runs:read", "project"))]
) -> dict[str, Any]:
    await _project(ctx, project_id, "runs:read")
    async with ctx.db.read() as s:
        runs = await service.list_runs(s, project_id)
    return {"items": [service.run_out(r) for r in runs]}


@router.get("/v1/runs/{run_id}", summary="Show a run with its steps")
async def get_run(
    run_id: str, ctx: Annotated[Ctx, Depends(require("runs:read", "project"))]
) -> dict[str, Any]:
    return await show_as(ctx, run_id)


async def show_as(ctx: Ctx, run_id: str) -> dict[str, Any]:
    run = await _run(ctx, run_id, "runs:read")
    async with ctx.db.read() as s:
        steps = await service.steps_of(s, run.id)
    return service.run_out(run, steps)


@router.post("/v1/runs/{run_id}/approve", summary="Approve the stage done; run the next")
async def approve(
    run_id: str, request: Request, ctx: Annotated[Ctx, Depends(require("runs:write", "project"))]
) -> dict[str, Any]:
    return await approve_as(ctx, orchestrator_of(request), run_id)


async def approve_as(ctx: Ctx, orch: Orchestrator, run_id: str) -> dict[str, Any]:
    await _run(ctx, run_id, "runs:write")
    async with ctx.db.transaction() as s:
        run = await service.approve_run(s, await service.get_run(s, run_id, lock=True))
        out = service.run_out(run)
    orch.submit(ctx.tenant_id, run_id)
    return out


@router.post("/v1/runs/{run_id}/cancel", summary="Cancel a run")
async def cancel(
    run_id: str, request: Request, ctx: Annotated[Ctx, Depends(require("runs:write", "project"))]
) -> dict[str, Any]:
    await _run(ctx, run_id, "runs:write")
    async with ctx.db.transaction() as s:
        run = await service.cancel_run(s, await service.get_run(s, run_id, lock=True))
        out = service.run_out(run)
    orchestrator_of(request).interrupt(run_id)
    return out


@router.get("/v1/runs/{run_id}/events", summary="A run's events (server-sent events)")
async def events(
    run_id: str,
    request: Request,
    ctx: Annotated[Ctx, Depends(require("runs:read", "project"))],
    after: Annotated[int, Query(ge=0, description="the last event id seen")] = 0,
    follow: Annotated[bool, Query(description="wait at an approval gate")] = False,
) -> StreamingResponse:
    await _run(ctx, run_id, "runs:read")
    last = request.headers.get("last-event-id")
    start = int(last) if last and last.isdigit() else after
    db, tenant_id = ctx.db, ctx.tenant_id

    async def stream() -> AsyncIterator[bytes]:
        seen = start
        quiet_since = time.monotonic()
        while True:
            with bind_tenant(tenant_id):
                async with db.read() as s:
                    batch = await service.events_after(s, run_id, seen)
                    state = (await service.get_run(s, run_id)).status
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > HEARTBEAT_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            for e in batch:
                seen = e.seq
                data = json.dumps({"seq": e.seq, "type": e.type, **e.data}, default=str)
                yield f"id: {e.seq}\nevent: {e.type}\ndata: {data}\n\n".encode()
            if not batch and (state in FINISHED or (state == "awaiting_approval" and not follow)):
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
