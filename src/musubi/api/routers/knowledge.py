"""The code knowledge engine of a project: index its repository, search it, pack context.

Every route is scoped to one project of the caller's tenant: another tenant's project id
gives 404 (the lookup is tenant-filtered), and each project has its own index directory
under ``<home>/knowledge/<tenant id>/<project id>/``, so no search path can reach another
tenant's chunks. Indexing and search do file I/O and CPU work, so they run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from musubi.access.principal import Principal
from musubi.api.deps import Ctx, require
from musubi.audit.service import record
from musubi.context import Actor, bind_actor, bind_tenant, system_scope
from musubi.errors import Conflict, InvalidInput, MusubiError
from musubi.gateway.pipeline import Call
from musubi.knowledge.embeddings import Embedder, make_embedder
from musubi.knowledge.embeddings.gateway import PREFIX, GatewayEmbedder
from musubi.knowledge.models import KnowledgeIndexRecord
from musubi.runtime import AppState
from musubi.storage.base import utcnow
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project

router = APIRouter(prefix="/v1/projects/{project_id}/knowledge", tags=["knowledge"])
log = logging.getLogger("musubi.knowledge")


class AgentIn(BaseModel):
    """Agent mode of file localisation (docs/knowledge.md, "Agent mode")."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        default=None,
        description="Model or alias; default: the routing of musubi/localise, else 'default'",
    )
    max_steps: int = Field(default=8, ge=1, le=50, description="Most model turns")
    max_tokens: int = Field(
        default=60_000, ge=1000, le=2_000_000, description="Most tokens, in and out, in all"
    )
    max_cost: float | None = Field(
        default=None, ge=0, description="USD: refused (422) when the estimate is above it"
    )
    estimate_only: bool = Field(default=False, description="Answer the estimate; call nothing")


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=20_000)  # with files: an issue's whole text
    k: int = Field(default=10, ge=1, le=100)
    path: str | None = Field(default=None, description="Path glob, e.g. 'src/*.py'")
    language: str | None = None
    kind: str | None = None
    files: bool = Field(
        default=False,
        description="Read the query as an issue and rank files (each with path, score, why)",
    )
    weight: float = Field(default=0.7, ge=0, le=1, description="Dense share of the fusion")
    agent: AgentIn | None = Field(
        default=None,
        description="With files: a model explores the repository with tools, through the "
        "gateway as this key (needs models:use)",
    )


class ContextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=8000)
    model: str = "gpt-4o"
    budget: int = Field(default=8000, ge=100, le=200_000)


@cache
def _local_embedder(name: str) -> Embedder | None:
    """Loaded once per process: model weights are read-only."""
    return None if name == "none" else make_embedder(name)


Make = Callable[[], Embedder | None]


def embedder_of(ctx: Ctx) -> Make:
    return _embedder_for(ctx.state, ctx.principal)


def _embedder_for(state: AppState, principal: Principal) -> Make:
    """How the worker thread gets this request's embedder: a local model, shared, or the
    gateway's embeddings as this key (built in the thread, calling back to this loop)."""
    name = state.settings.knowledge_embedder
    if not name.startswith(PREFIX):
        return lambda: _local_embedder(name)
    model = name.removeprefix(PREFIX)
    gateway = state.gateway
    if gateway is None:
        raise MusubiError("the gateway is not running in this process")
    loop = asyncio.get_running_loop()

    async def run(texts: list[str]) -> dict[str, Any]:
        call = Call(principal, "embedding", {"model": model, "input": texts})
        with bind_tenant(principal.tenant_id):
            outcome = await gateway.run(call, state.quotas, state.ledger)
        assert outcome.data is not None
        return outcome.data

    return lambda: GatewayEmbedder(model, run, loop)


async def _project(ctx: Ctx, project_id: str, perm: str) -> Project:
    async with ctx.db.read() as s:
        project = await get_one(s, Project, project_id, "project")
    ctx.check(perm, team_id=project.team_id, project_id=project.id)
    return project


def _dir(ctx: Ctx, project: Project) -> Path:
    from musubi.knowledge.workspace import project_dir

    return project_dir(ctx.state.settings.home, ctx.tenant_id, project.id)


Where = tuple[str | None, tuple[str, str]]


def _where(ctx: Ctx, project: Project) -> Where:
    """The vector store's URL (None: embedded) and collection scope (tenant, project)."""
    return ctx.state.settings.knowledge_vector_url, (ctx.tenant_id, project.id)


def _index(path: Path, repo: Path, embedder: Make, where: Where) -> dict[str, Any]:
    from musubi.knowledge.indexer import index_repository
    from musubi.knowledge.workspace import Workspace

    ws = Workspace.open(path, embedder(), vector_url=where[0], scope=where[1])
    try:
        report = index_repository(repo, ws.index, ws.embedder, ws.store)
        return {**report.as_dict(), **ws.index.counts()}
    finally:
        ws.close()


@dataclass
class _Agent:
    """What the worker thread needs to run the agent through the gateway."""

    chat: Callable[[dict[str, Any]], Any]
    model: str
    count: Callable[[str], int]
    price: Callable[[int, int], float]
    root: Path


def _search(
    path: Path, embedder: Make, body: SearchIn, where: Where, agent: _Agent | None = None
) -> dict[str, Any]:
    from musubi.knowledge.localise import localise
    from musubi.knowledge.store import Filters
    from musubi.knowledge.workspace import Workspace

    ws = Workspace.open(path, embedder(), False, vector_url=where[0], scope=where[1])
    try:
        filters = Filters(body.path, body.language, body.kind)
        if agent is not None and body.agent is not None:
            from musubi.knowledge.agent import AgentLimits, agent_localise

            a = body.agent
            limits = AgentLimits(a.max_steps, a.max_tokens, a.max_cost)
            result = agent_localise(
                ws.retriever(body.weight),
                body.query,
                agent.chat,
                agent.model,
                agent.count,
                agent.price,
                root=agent.root,
                k=body.k,
                filters=filters,
                limits=limits,
                estimate_only=a.estimate_only,
            )
            out = result.as_dict()
            out["agent"]["model"] = agent.model
            return out
        if body.files:  # the query is an issue: files with the signals that placed them
            files = localise(ws.retriever(body.weight), body.query, body.k, filters)
            return {"files": [f.as_dict() for f in files]}
        hits = ws.retriever(body.weight).search(body.query, body.k, filters)
    finally:
        ws.close()
    return {"hits": [h.as_dict() for h in hits]}


def _context(path: Path, embedder: Make, body: ContextIn, where: Where) -> dict[str, Any]:
    from musubi.knowledge.context import pack_context
    from musubi.knowledge.workspace import Workspace

    ws = Workspace.open(path, embedder(), False, vector_url=where[0], scope=where[1])
    try:
        pack = pack_context(ws.retriever(), body.task, body.model, body.budget)
    finally:
        ws.close()
    return {**pack.as_dict(), "text": pack.render()}


@router.post(
    "/index",
    summary="Index (incrementally) the project's repository; wait=false runs it in the "
    "background (202; follow it with GET .../knowledge)",
)
async def index(
    project_id: str,
    ctx: Annotated[Ctx, Depends(require("knowledge:write", "project"))],
    wait: bool = True,
) -> Any:
    project = await _project(ctx, project_id, "knowledge:write")
    if not project.repo_path:
        raise Conflict(
            f"project {project_id!r} has no repository; set repo_path", field="repo_path"
        )
    if not await asyncio.to_thread(Path(project.repo_path).is_dir):
        raise Conflict(f"the repository of project {project_id!r} is missing on the server")
    if project.id in ctx.state.index_runs:
        raise Conflict(f"project {project_id!r} is being indexed; follow it with GET")
    if wait:
        return await _run_index(ctx.state, ctx.principal, project)
    async with ctx.db.transaction() as s:
        row = await _record(s, project.id)
        row.state, row.error, row.requested_at = "queued", None, utcnow()
        p = ctx.principal
        row.user_id, row.key_id, row.actor = p.user_id, p.key_id, p.actor
    _start(ctx.state, ctx.principal, project)
    return JSONResponse({"project_id": project.id, "state": "queued"}, status_code=202)


async def _record(s: Any, project_id: str) -> KnowledgeIndexRecord:
    row = (
        await s.execute(
            select(KnowledgeIndexRecord).where(KnowledgeIndexRecord.project_id == project_id)
        )
    ).scalar_one_or_none()
    if row is None:
        row = KnowledgeIndexRecord(project_id=project_id)
        s.add(row)
    return row  # type: ignore[no-any-return]


async def _run_index(state: AppState, principal: Principal, project: Project) -> dict[str, Any]:
    """Index now, in a worker thread, and record the result (tenant already bound)."""
    from musubi.knowledge.workspace import project_dir  # the knowledge extra: imported late

    repo = Path(project.repo_path or "")
    if not project.repo_path or not await asyncio.to_thread(repo.is_dir):
        raise Conflict(f"the repository of project {project.id!r} is missing on the server")
    settings = state.settings
    where = (settings.knowledge_vector_url, (principal.tenant_id, project.id))
    path = project_dir(settings.home, principal.tenant_id, project.id)
    result = await asyncio.to_thread(_index, path, repo, _embedder_for(state, principal), where)
    async with state.db.transaction() as s:
        row = await _record(s, project.id)
        row.embedder = settings.knowledge_embedder
        row.files, row.chunks = result["files"], result["chunks"]
        row.skipped, row.seconds, row.indexed_at = result["skipped"], result["seconds"], utcnow()
        row.state, row.error = "done", None
        detail = {k: result[k] for k in ("files", "chunks", "indexed", "removed", "embedded")}
        await record(s, "knowledge.index", project.id, detail=detail)
    return result


def _start(state: AppState, principal: Principal, project: Project) -> None:
    """Run an index in the background; its record says queued/running/done/failed."""

    async def run() -> None:
        with bind_tenant(principal.tenant_id), bind_actor(Actor(principal.actor)):
            try:
                async with state.db.transaction() as s:
                    (await _record(s, project.id)).state = "running"
                await _run_index(state, principal, project)
            except asyncio.CancelledError:
                raise  # the server stops: the record stays running, resumed on restart
            except Exception as exc:
                log.exception("background index of project %s failed", project.id)
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                async with state.db.transaction() as s:
                    row = await _record(s, project.id)
                    row.state, row.error = "failed", message[:2000]
            finally:
                state.index_runs.pop(project.id, None)

    state.index_runs[project.id] = asyncio.get_running_loop().create_task(run())


async def resume_indexing(state: AppState) -> int:
    """Start again the background indexes a stopped server left queued or running."""
    with system_scope():
        async with state.db.read() as s:
            rows = (
                await s.execute(
                    select(KnowledgeIndexRecord, Project)
                    .join(Project, Project.id == KnowledgeIndexRecord.project_id)
                    .where(KnowledgeIndexRecord.state.in_(("queued", "running")))
                )
            ).all()
    for row, project in rows:
        principal = Principal(
            tenant_id=row.tenant_id,
            user_id=row.user_id or "",
            actor=row.actor or "system",
            key_id=row.key_id,
        )
        _start(state, principal, project)
    return len(rows)


@router.get("", summary="The project's index: files, chunks, embedder, when")
async def status(
    project_id: str, ctx: Annotated[Ctx, Depends(require("knowledge:read", "project"))]
) -> dict[str, Any]:
    project = await _project(ctx, project_id, "knowledge:read")
    async with ctx.db.read() as s:
        row = (
            await s.execute(
                select(KnowledgeIndexRecord).where(KnowledgeIndexRecord.project_id == project.id)
            )
        ).scalar_one_or_none()
    if row is None:
        return {"project_id": project.id, "indexed": False, "state": None}
    return {
        "project_id": project.id,
        "indexed": row.indexed_at is not None,
        "state": row.state,
        "error": row.error,
        "embedder": row.embedder,
        "files": row.files,
        "chunks": row.chunks,
        "skipped": row.skipped,
        "seconds": row.seconds,
        "indexed_at": row.indexed_at,
    }


@router.post("/search", summary="Hybrid search (BM25 + embeddings) with filters")
async def search(
    project_id: str,
    body: SearchIn,
    ctx: Annotated[Ctx, Depends(require("knowledge:read", "project"))],
) -> dict[str, Any]:
    project = await _project(ctx, project_id, "knowledge:read")
    agent = await _agent(ctx, project, body) if body.agent is not None else None
    out = await asyncio.to_thread(
        _search, _dir(ctx, project), embedder_of(ctx), body, _where(ctx, project), agent
    )
    if agent is not None and out["agent"]["stopped"] != "estimate only":
        keep = ("model", "steps", "input_tokens", "output_tokens", "cost", "stopped", "named")
        async with ctx.db.transaction() as s:
            detail = {k: out["agent"][k] for k in keep}
            await record(s, "knowledge.localise.agent", project.id, detail=detail)
    return out


async def _agent(ctx: Ctx, project: Project, body: SearchIn) -> _Agent:
    """The gateway as this key, for the agent: its model, token counter and price."""
    from musubi.gateway.tokens import count_text
    from musubi.orchestrator.llm import GatewayModel, blocking_chat, choose_model

    if not body.files:
        raise InvalidInput("agent mode localises files: set files to true", field="agent")
    ctx.check("models:use", team_id=project.team_id, project_id=project.id)
    gateway = ctx.state.gateway
    if gateway is None:
        raise MusubiError("the gateway is not running in this process")
    if not project.repo_path:
        raise Conflict(f"project {project.id!r} has no repository; set repo_path")
    assert body.agent is not None
    table = await gateway.table(ctx.tenant_id)
    info = choose_model(table, "localise", body.agent.model)
    model = GatewayModel(gateway, ctx.principal, ctx.state.quotas, ctx.state.ledger)
    return _Agent(
        blocking_chat(model, asyncio.get_running_loop()),
        info.name,
        lambda text: count_text(text, info),
        info.cost,
        Path(project.repo_path),
    )


@router.post("/context", summary="Pack repo map, specs and code for a task into a budget")
async def context(
    project_id: str,
    body: ContextIn,
    ctx: Annotated[Ctx, Depends(require("knowledge:read", "project"))],
) -> dict[str, Any]:
    project = await _project(ctx, project_id, "knowledge:read")
    return await asyncio.to_thread(
        _context, _dir(ctx, project), embedder_of(ctx), body, _where(ctx, project)
    )
