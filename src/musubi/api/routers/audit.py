"""Query, export, verify and purge the caller's tenant's audit log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from musubi.alerts import record_audit_failure
from musubi.api.deps import Ctx, require
from musubi.audit import retention, service
from musubi.context import bind_tenant
from musubi.storage.tenants import Tenant
from musubi.storage.values import check_value

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def _filter(
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100, description="exact, or prefix*")] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> service.EventFilter:
    # Checked here, not by the statement hook: the export streams, and a refusal raised once
    # its body has started could no longer be a 422.
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        check_value(name, value)
    return service.EventFilter(since, until, actor, action, target, before_seq, limit)


@router.get("/events", summary="Query events, newest first")
async def list_events(
    ctx: Annotated[Ctx, Depends(require("audit:read", "tenant"))],
    f: Annotated[service.EventFilter, Depends(_filter)],
) -> dict[str, Any]:
    ctx.check("audit:read")
    async with ctx.db.read() as s:
        events = await service.list_events(s, f)
    items = [service.event_dict(e) for e in events]
    cursor = str(events[-1].seq) if len(events) == f.limit else None
    return {"items": items, "next_cursor": cursor}


@router.get(
    "/export",
    summary="Export events as JSON Lines, oldest first",
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def export_events(
    ctx: Annotated[Ctx, Depends(require("audit:read", "tenant"))],
    f: Annotated[service.EventFilter, Depends(_filter)],
) -> StreamingResponse:
    ctx.check("audit:read")
    tenant_id = ctx.tenant_id

    async def lines() -> AsyncIterator[bytes]:
        # The body streams after the handler returns, so bind the tenant here again.
        with bind_tenant(tenant_id):
            async with ctx.db.read() as s:
                async for e in service.stream_events(s, f):
                    yield (json.dumps(service.event_dict(e), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/verify", summary="Verify the tenant's hash chain and signatures")
async def verify(ctx: Annotated[Ctx, Depends(require("audit:verify", "tenant"))]) -> dict[str, Any]:
    ctx.check("audit:verify")
    async with service.snapshot(ctx.db) as s:
        report = await service.verify(s, ctx.tenant_id, tenant_chain=True)
    if report.broken is not None:  # the tenant's chats hear it once (outside the chain)
        b = report.broken
        await record_audit_failure(ctx.db, ctx.tenant_id, b.seq, b.event_id, b.reason)
    return report.as_dict()


@router.post("/purge", summary="Apply the tenant's retention (old events are removed)")
async def purge(ctx: Annotated[Ctx, Depends(require("audit:purge", "tenant"))]) -> dict[str, Any]:
    ctx.check("audit:purge")
    floor = ctx.state.settings.audit_retention_min_days
    async with ctx.db.transaction() as s:
        tenant = await s.get(Tenant, ctx.tenant_id)
        assert tenant is not None
        done = await retention.purge(s, ctx.tenant_id, tenant.audit_retention_days, floor)
        detail = {"removed": done.removed, "retention_days": done.retention_days}
        await service.record(s, "audit.purge", ctx.tenant_id, detail=detail)
    return detail
