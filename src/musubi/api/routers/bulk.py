"""Bulk administration: import (create or update) and export users, keys, projects and
role assignments, as JSON or CSV. See docs/bulk.md.

Each kind has its own two routes, so each declares that kind's own permission: import
needs the kind's write permission (``users:write``, ``keys:write``, ``projects:write``,
``roles:write``), export its read permission. Items are checked one by one exactly as
the single routes check them; the answer is a report, 200 even when some items failed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from musubi.api.deps import Ctx, actor_for, require
from musubi.bulk import KINDS, Caller, Format, Report, export_rows, import_items, parse, render
from musubi.errors import InvalidInput
from musubi.tenancy.crossing import record_if_cross_tenant

router = APIRouter(prefix="/v1/bulk", tags=["bulk"])

_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": 'An array of items, or {"items": [...]} (an export)',
                    "oneOf": [{"type": "array"}, {"type": "object"}],
                }
            },
            "text/csv": {"schema": {"type": "string", "description": "Header line first"}},
        },
    }
}
_IMPORT: dict[str, Any] = {"openapi_extra": _IMPORT_BODY, "response_model_exclude_none": True}

_EXPORT: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The items, in the format asked for",
            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
        }
    }
}

FormatQuery = Annotated[Format, Query(alias="format", description="csv or json")]


def _caller(ctx: Ctx) -> Caller:
    return Caller(ctx.tenant_id, ctx.state.settings.effective_repos_root, ctx.principal)


def _format_of(request: Request) -> Format:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "text/csv":
        return "csv"
    if media in ("application/json", ""):
        return "json"
    raise InvalidInput(
        f"Content-Type {media!r}: send application/json or text/csv", field="content-type"
    )


async def _import(
    ctx: Ctx, request: Request, kind_name: str, background: BackgroundTasks
) -> Report:
    kind = KINDS[kind_name]
    items = parse(await request.body(), _format_of(request), kind.name)
    caller = _caller(ctx)
    report = await import_items(ctx.db, caller, kind, items)
    ctx.auth.invalidate(ctx.tenant_id)  # disabled users, new roles: effective at once
    actor = actor_for(request, ctx.principal.actor)
    for model, id_, detail in caller.missing:  # after the answer (see tenancy.crossing)
        background.add_task(
            record_if_cross_tenant,
            ctx.db,
            model,
            id_,
            tenant_id=ctx.tenant_id,
            actor=actor,
            detail=detail,
        )
    return report


async def _export(ctx: Ctx, kind_name: str, fmt: Format) -> Response:
    kind = KINDS[kind_name]
    rows = await export_rows(ctx.db, _caller(ctx), kind)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(render(rows, kind.columns, fmt, kind.name), media_type=media)


@router.post("/users", summary="Create or update users from JSON or CSV", **_IMPORT)
async def import_users(
    request: Request,
    ctx: Annotated[Ctx, Depends(require("users:write", "tenant"))],
    background: BackgroundTasks,
) -> Report:
    return await _import(ctx, request, "users", background)


@router.get("/users", summary="Export users as JSON or CSV", **_EXPORT)
async def export_users(
    ctx: Annotated[Ctx, Depends(require("users:read", "tenant"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "users", fmt)


@router.post("/keys", summary="Create API keys from JSON or CSV (secrets shown once)", **_IMPORT)
async def import_keys(
    request: Request,
    ctx: Annotated[Ctx, Depends(require("keys:write", "own"))],
    background: BackgroundTasks,
) -> Report:
    return await _import(ctx, request, "keys", background)


@router.get("/keys", summary="Export active API keys (never their secrets)", **_EXPORT)
async def export_keys(
    ctx: Annotated[Ctx, Depends(require("keys:read", "own"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "keys", fmt)


@router.post("/projects", summary="Create or update projects from JSON or CSV", **_IMPORT)
async def import_projects(
    request: Request,
    ctx: Annotated[Ctx, Depends(require("projects:write", "team"))],
    background: BackgroundTasks,
) -> Report:
    return await _import(ctx, request, "projects", background)


@router.get("/projects", summary="Export projects as JSON or CSV", **_EXPORT)
async def export_projects(
    ctx: Annotated[Ctx, Depends(require("projects:read", "project"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "projects", fmt)


@router.post("/assignments", summary="Give users roles from JSON or CSV (idempotent)", **_IMPORT)
async def import_assignments(
    request: Request,
    ctx: Annotated[Ctx, Depends(require("roles:write", "tenant"))],
    background: BackgroundTasks,
) -> Report:
    return await _import(ctx, request, "assignments", background)


@router.get("/assignments", summary="Export role assignments as JSON or CSV", **_EXPORT)
async def export_assignments(
    ctx: Annotated[Ctx, Depends(require("roles:read", "project"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "assignments", fmt)
