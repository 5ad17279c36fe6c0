"""Bulk administration: import (create or update) and export users, keys, projects and
role assignments, as JSON or CSV. See docs/bulk.md.

Each kind has its own two routes, so each declares that kind's own permission: import
needs the kind's write permission (``users:write``, ``keys:write``, ``projects:write``,
``roles:write``), export its read permission. Items are checked one by one exactly as
the single routes check them; the answer is a report, 200 even when some items failed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from musubi.api.deps import Ctx, require
from musubi.bulk import KINDS, Caller, Format, Report, export_rows, import_items, parse, render
from musubi.errors import InvalidInput

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


async def _import(ctx: Ctx, request: Request, kind_name: str) -> Report:
    kind = KINDS[kind_name]
    items = parse(await request.body(), _format_of(request), kind.name)
    report = await import_items(ctx.db, _caller(ctx), kind, items)
    ctx.auth.invalidate(ctx.tenant_id)  # disabled users, new roles: effective at once
    return report


async def _export(ctx: Ctx, kind_name: str, fmt: Format) -> Response:
    kind = KINDS[kind_name]
    rows = await export_rows(ctx.db, _caller(ctx), kind)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(render(rows, kind.columns, fmt, kind.name), media_type=media)


@router.post("/users", summary="Create or update users from JSON or CSV", **_IMPORT)
async def import_users(
    request: Request, ctx: Annotated[Ctx, Depends(require("users:write", "tenant"))]
) -> Report:
    return await _import(ctx, request, "users")


@router.get("/users", summary="Export users as JSON or CSV")
async def export_users(
    ctx: Annotated[Ctx, Depends(require("users:read", "tenant"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "users", fmt)


@router.post("/keys", summary="Create API keys from JSON or CSV (secrets shown once)", **_IMPORT)
async def import_keys(
    request: Request, ctx: Annotated[Ctx, Depends(require("keys:write", "own"))]
) -> Report:
    return await _import(ctx, request, "keys")


@router.get("/keys", summary="Export active API keys (never their secrets)")
async def export_keys(
    ctx: Annotated[Ctx, Depends(require("keys:read", "own"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "keys", fmt)


@router.post("/projects", summary="Create or update projects from JSON or CSV", **_IMPORT)
async def import_projects(
    request: Request, ctx: Annotated[Ctx, Depends(require("projects:write", "team"))]
) -> Report:
    return await _import(ctx, request, "projects")


@router.get("/projects", summary="Export projects as JSON or CSV")
async def export_projects(
    ctx: Annotated[Ctx, Depends(require("projects:read", "project"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "projects", fmt)


@router.post("/assignments", summary="Give users roles from JSON or CSV (idempotent)", **_IMPORT)
async def import_assignments(
    request: Request, ctx: Annotated[Ctx, Depends(require("roles:write", "tenant"))]
) -> Report:
    return await _import(ctx, request, "assignments")


@router.get("/assignments", summary="Export role assignments as JSON or CSV")
async def export_assignments(
    ctx: Annotated[Ctx, Depends(require("roles:read", "project"))], fmt: FormatQuery = "json"
) -> Response:
    return await _export(ctx, "assignments", fmt)
