"""Usage quotas of the caller's tenant, its teams, projects and keys; and usage so far."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from musubi.api.deps import Ctx, require
from musubi.quotas import policies
from musubi.quotas.models import QuotaPolicy
from musubi.storage.queries import get_one
from musubi.usage.models import UsageRow

router = APIRouter(tags=["quotas"])


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    cost_per_day: float | None = Field(default=None, ge=0, description="USD")
    cost_per_month: float | None = Field(default=None, ge=0, description="USD")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["tenant", "team", "project", "key"]
    scope_id: str = Field(default="", max_length=40)
    limits: Limits


class PolicyOut(Limits):
    model_config = ConfigDict(from_attributes=True, extra="ignore")
    id: str
    scope: str
    scope_id: str


@router.get("/v1/quotas", summary="List quota policies")
async def list_quotas(
    ctx: Annotated[Ctx, Depends(require("billing:read", "tenant"))],
) -> dict[str, Any]:
    ctx.check("billing:read")
    async with ctx.db.read() as s:
        items = await policies.list_policies(s)
    return {"items": [PolicyOut.model_validate(p) for p in items]}


@router.put("/v1/quotas", summary="Set the quota policy of one scope (replaces its limits)")
async def set_quota(
    body: PolicyIn, ctx: Annotated[Ctx, Depends(require("quotas:write", "tenant"))]
) -> PolicyOut:
    ctx.check("quotas:write")
    async with ctx.db.transaction() as s:
        policy = await policies.set_policy(
            s, body.scope, body.scope_id, body.limits.model_dump(exclude_none=True)
        )
    ctx.state.quotas.invalidate(ctx.tenant_id)
    return PolicyOut.model_validate(policy)


@router.get("/v1/quotas/{policy_id}", summary="Show a quota policy")
async def get_quota(
    policy_id: str, ctx: Annotated[Ctx, Depends(require("billing:read", "tenant"))]
) -> PolicyOut:
    ctx.check("billing:read")
    async with ctx.db.read() as s:
        return PolicyOut.model_validate(await get_one(s, QuotaPolicy, policy_id, "quota policy"))


@router.delete("/v1/quotas/{policy_id}", status_code=204, summary="Remove a quota policy")
async def delete_quota(
    policy_id: str, ctx: Annotated[Ctx, Depends(require("quotas:write", "tenant"))]
) -> None:
    ctx.check("quotas:write")
    async with ctx.db.transaction() as s:
        await policies.delete_policy(s, policy_id)
    ctx.state.quotas.invalidate(ctx.tenant_id)


@router.get("/v1/usage", summary="Usage and cost per model (from the ledger)")
async def usage(
    ctx: Annotated[Ctx, Depends(require("usage:read", "project"))],
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    project_id: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    ctx.check("usage:read", project_id=project_id)
    query = (
        select(
            UsageRow.model,
            UsageRow.provider,
            func.count(),
            func.sum(UsageRow.input_tokens),
            func.sum(UsageRow.output_tokens),
            func.sum(UsageRow.cost),
        )
        .group_by(UsageRow.model, UsageRow.provider)
        .order_by(UsageRow.model)
    )
    if since:
        query = query.where(UsageRow.at >= since)
    if until:
        query = query.where(UsageRow.at < until)
    if project_id:
        query = query.where(UsageRow.project_id == project_id)
    async with ctx.db.read() as s:
        rows = (await s.execute(query)).all()
    items = [
        {
            "model": m,
            "provider": p,
            "requests": n,
            "input_tokens": int(i or 0),
            "output_tokens": int(o or 0),
            "cost": float(c or 0),
        }
        for m, p, n, i, o, c in rows
    ]
    return {"items": items, "total_cost": sum(x["cost"] for x in items)}
