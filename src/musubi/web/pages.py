"""The dashboard's pages: overview, runs, projects, models, audit; login and logout.

Pages adapt, services decide: each page calls the same function as the REST route it
shows (``musubi.api.routers.*``, ``musubi.api.routers.runs``), with the same checks
on the object, so a page cannot show what its API would refuse. Administration is in
``admin.py``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.api.deps import Ctx, app_state
from musubi.api.gateway_http import gateway_of
from musubi.api.routers import audit as audit_api
from musubi.api.routers import projects as projects_api
from musubi.api.routers import providers as providers_api
from musubi.api.routers import runs as runs_api
from musubi.api.routers import sdd as sdd_api
from musubi.audit import service as audit_service
from musubi.errors import InvalidInput, MusubiError
from musubi.orchestrator import service as runs_service
from musubi.orchestrator.models import Run
from musubi.sso import sessions
from musubi.storage.values import check_value
from musubi.web import usage
from musubi.web.auth import login_with_key, page, safe_next
from musubi.web.render import html

__all__ = ["router"]

router = APIRouter()

Overview = Annotated[Ctx, Depends(page("GET /v1/usage"))]
RunsRead = Annotated[Ctx, Depends(page("GET /v1/runs/{run_id}"))]
RunsWrite = Annotated[Ctx, Depends(page("POST /v1/runs/{run_id}/approve"))]
ProjectsRead = Annotated[Ctx, Depends(page("GET /v1/projects/{project_id}"))]
Models = Annotated[Ctx, Depends(page("GET /v1/gateway/config"))]
AuditRead = Annotated[Ctx, Depends(page("GET /v1/audit/events"))]
AuditVerify = Annotated[Ctx, Depends(page("POST /v1/audit/verify"))]
Me = Annotated[Ctx, Depends(page("GET /v1/me"))]


# -- login, logout ----------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, next: str | None = None, tenant: str = "") -> Response:
    return html(request, "login.html", next=safe_next(next), tenant=tenant, errors={})


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=1000)] = "/ui/",
) -> Response:
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        return html(
            request, "login.html", 403, next="/ui/", tenant="", errors={"api_key": "wrong origin"}
        )
    try:
        token, csrf, max_age = await login_with_key(request, api_key)
    except InvalidInput as exc:
        errors = {exc.field or "api_key": exc.message}
        return html(request, "login.html", 400, next=safe_next(next), tenant="", errors=errors)
    response = RedirectResponse(safe_next(next), status_code=303)
    sessions.set_cookies(
        response,
        request,
        token=token,
        csrf=csrf,
        max_age=max_age,
        public_url=app_state(request).settings.public_url,
    )
    return response


@router.get("/sso")
async def sso(
    request: Request,
    tenant: Annotated[str, Query(max_length=200)] = "",
    next: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """The tenant's single sign-on link. A link, not a redirect: the CSP's
    ``form-action 'self'`` forbids a form whose answer redirects to another site (the IdP)."""
    errors = {}
    if not tenant.strip():
        errors["tenant"] = "tenant: give your organisation's tenant name or id"
    status = 400 if errors else 200
    return html(
        request, "login.html", status, next=safe_next(next), tenant=tenant.strip(), errors=errors
    )


@router.post("/logout")
async def logout(request: Request, ctx: Me) -> Response:
    actor = ctx.principal.actor
    if actor.startswith("session:"):
        async with ctx.db.transaction() as s:
            await sessions.revoke_session(s, actor.split(":", 1)[1], reason="logout")
        ctx.auth.invalidate(ctx.tenant_id)
    response = Response(status_code=204, headers={"HX-Redirect": "/ui/login"})
    sessions.clear_cookies(response)
    return response


# -- overview ---------------------------------------------------------------------------


@router.get("/")
async def overview(
    request: Request,
    ctx: Overview,
    by: Annotated[usage.Dimension, Query()] = "model",
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    ctx.check("usage:read")  # as GET /v1/usage without a project: the whole tenant
    async with ctx.db.transaction() as s:  # may roll up days closed since the last view
        chart = await usage.usage_by_day(s, ctx.tenant_id, by, days)
        quotas = (
            await usage.quota_use(s, ctx.tenant_id) if ctx.principal.can("billing:read") else None
        )
    return html(
        request,
        "overview.html",
        chart=chart,
        by=by,
        days=days,
        dimensions=usage.DIMENSIONS,
        quotas=quotas,
    )


# -- runs -------------------------------------------------------------------------------


async def recent_runs(s: AsyncSession, project_ids: set[str], limit: int = 200) -> list[Run]:
    """The latest runs of these projects, newest first, in one query."""
    if not project_ids:
        return []
    query = (
        select(Run)
        .where(Run.project_id.in_(project_ids))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
    )
    return list((await s.scalars(query)).all())


@router.get("/runs")
async def runs(request: Request, ctx: RunsRead) -> Response:
    projects = {
        p.id: p
        for p in (await projects_api.list_projects(ctx)).items
        if ctx.principal.can("runs:read", team_id=p.team_id, project_id=p.id)
    }
    async with ctx.db.read() as s:
        runs = await recent_runs(s, set(projects))
    found = [(projects[r.project_id], runs_service.run_out(r)) for r in runs]
    return html(request, "runs.html", runs=found)


async def _run_panel(request: Request, ctx: Ctx, run_id: str) -> dict[str, Any]:
    run = await runs_api.show_as(ctx, run_id)
    can_write = True
    try:
        await runs_api._run(ctx, run_id, "runs:write")
    except MusubiError:
        can_write = False
    return {"run": run, "can_write": can_write}


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, ctx: RunsRead) -> Response:
    return html(request, "run.html", **await _run_panel(request, ctx, run_id))


@router.get("/runs/{run_id}/panel")
async def run_panel(request: Request, run_id: str, ctx: RunsRead) -> Response:
    return html(request, "run_panel.html", **await _run_panel(request, ctx, run_id))


@router.post("/runs/{run_id}/approve")
async def approve(request: Request, run_id: str, ctx: RunsWrite) -> Response:
    await runs_api.approve_as(ctx, runs_api.orchestrator_of(request), run_id)
    return html(request, "run_panel.html", **await _run_panel(request, ctx, run_id))


@router.post("/runs/{run_id}/reject")
async def reject(request: Request, run_id: str, ctx: RunsWrite) -> Response:
    await runs_api.cancel(run_id, request, ctx)
    return html(request, "run_panel.html", **await _run_panel(request, ctx, run_id))


# -- projects ---------------------------------------------------------------------------


@router.get("/projects")
async def projects(request: Request, ctx: ProjectsRead) -> Response:
    items = (await projects_api.list_projects(ctx)).items
    return html(request, "projects.html", projects=items)


async def _or_problem(coro: Any) -> Any:
    """A section that cannot be read shows why (no repository, a parse error)."""
    try:
        return await coro
    except MusubiError as exc:
        return {"problem": exc.message}


@router.get("/projects/{project_id}")
async def project(request: Request, project_id: str, ctx: ProjectsRead) -> Response:
    shown = await projects_api.get_project(project_id, ctx)
    workflow, gates, reqs, trace = await asyncio.gather(
        _or_problem(sdd_api.workflow_status(project_id, ctx)),
        _or_problem(sdd_api.gates(project_id, ctx)),
        _or_problem(sdd_api.requirements(project_id, ctx)),
        _or_problem(sdd_api.trace(project_id, ctx, commits=False, require_="design,code,tests")),
    )
    return html(
        request,
        "project.html",
        project=shown,
        workflow=workflow,
        gates=gates,
        reqs=reqs,
        trace=trace,
    )


# -- models -----------------------------------------------------------------------------


@router.get("/models")
async def models(request: Request, ctx: Models) -> Response:
    config = await providers_api.get_config(ctx)
    credentials = (await providers_api.list_providers(ctx))["items"]
    gw = gateway_of(ctx)
    table = await gw.table(ctx.tenant_id)
    usable = set(table.usable_models())
    catalogue = [{**m.public(), "usable": m.name in usable} for m in gw.catalogue.models.values()]
    catalogue.sort(key=lambda m: (not m["usable"], m["name"]))
    breakers = [
        {"id": d.id, "model": name, "credential": d.credential, "state": gw.breaker.state(d.id)}
        for name, deps in sorted(table.by_model.items())
        for d in deps
    ]
    async with ctx.db.transaction() as s:
        cache = await usage.usage_by_day(s, ctx.tenant_id, "model", 30)
    hits = sum(r["cached"] for r in cache.rows)
    return html(
        request,
        "models.html",
        config=config,
        credentials=credentials,
        catalogue=catalogue,
        breakers=breakers,
        cache=cache,
        hit_rate=hits / cache.total_requests if cache.total_requests else 0.0,
    )


# -- audit ------------------------------------------------------------------------------


@router.get("/audit")
async def audit(
    request: Request,
    ctx: AuditRead,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query()] = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    actor, action, target = (v or None for v in (actor, action, target))
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        check_value(name, value)
    f = audit_service.EventFilter(since, None, actor, action, target, before_seq, 50)
    found = await audit_api.list_events(ctx, f)
    query = {k: v for k, v in {"actor": actor, "action": action, "target": target}.items() if v}
    return html(
        request,
        "audit.html",
        events=found["items"],
        next_cursor=found["next_cursor"],
        query=query,
        can_verify=ctx.principal.can("audit:verify"),
    )


@router.post("/audit/verify")
async def verify(request: Request, ctx: AuditVerify) -> Response:
    report = await audit_api.verify(ctx)
    return html(request, "verify.html", report=report)
