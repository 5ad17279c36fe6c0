"""The caller's tenant, and (for the root tenant's owners) every tenant."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.schemas import Created, Page, Patch, TenantOut
from musubi.audit.retention import check_retention
from musubi.context import system_scope
from musubi.errors import NotFound
from musubi.identity.bootstrap import provision_tenant
from musubi.tenancy import service

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    owner_name: str = Field(default="owner", min_length=1, max_length=200)
    audit_retention_days: int = Field(default=365, ge=1, le=36500)


class TenantPatch(Patch):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    audit_retention_days: int | None = Field(default=None, ge=1, le=36500)


class TenantCreated(Created):
    tenant: TenantOut
    owner_user_id: str
    owner_key: str = Field(description="Shown once; store it now.")


def _visible(ctx: Ctx, tenant_id: str) -> None:
    """Another tenant exists for the caller only if it administers the platform."""
    if tenant_id != ctx.tenant_id and not ctx.principal.can("platform:tenants"):
        from musubi.storage.tenants import Tenant

        raise NotFound(f"tenant {tenant_id!r} not found", model=Tenant, id=tenant_id)


@router.get("", summary="List tenants (the caller's own, or all for platform admins)")
async def list_tenants(
    ctx: Annotated[Ctx, Depends(require("tenant:read", "tenant"))],
) -> Page[TenantOut]:
    platform = ctx.principal.can("platform:tenants")
    with system_scope() if platform else nullcontext():
        async with ctx.db.read() as s:
            items = await service.list_tenants(s)
    return Page(items=[TenantOut.model_validate(t) for t in items])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a tenant with an owner")
async def create_tenant(
    body: TenantIn, ctx: Annotated[Ctx, Depends(require("platform:tenants", "tenant"))]
) -> TenantCreated:
    check_retention(body.audit_retention_days, ctx.state.settings.audit_retention_min_days)
    with system_scope():
        async with ctx.db.transaction() as s:
            tenant, owner, token = await provision_tenant(
                s,
                body.name,
                owner_name=body.owner_name,
                retention_days=body.audit_retention_days,
            )
    return TenantCreated(
        tenant=TenantOut.model_validate(tenant), owner_user_id=owner.id, owner_key=token
    )


@router.get("/{tenant_id}", summary="Show a tenant")
async def get_tenant(
    tenant_id: str, ctx: Annotated[Ctx, Depends(require("tenant:read", "tenant"))]
) -> TenantOut:
    _visible(ctx, tenant_id)
    with system_scope():
        async with ctx.db.read() as s:
            return TenantOut.model_validate(await service.get_tenant(s, tenant_id))


@router.patch("/{tenant_id}", summary="Change a tenant")
async def update_tenant(
    tenant_id: str,
    body: TenantPatch,
    ctx: Annotated[Ctx, Depends(require("tenant:update", "tenant"))],
) -> TenantOut:
    _visible(ctx, tenant_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    with system_scope():
        async with ctx.db.transaction() as s:
            days = changes.get("audit_retention_days")
            if (
                days is not None
                and days != (await service.get_tenant(s, tenant_id)).audit_retention_days
            ):
                # Retention decides what the log forgets: changing it is purging it.
                ctx.check("audit:purge")
                check_retention(days, ctx.state.settings.audit_retention_min_days)
            tenant = await service.update_tenant(s, tenant_id, changes)
    return TenantOut.model_validate(tenant)


@router.delete("/{tenant_id}", status_code=204, summary="Delete a tenant and all its data")
async def delete_tenant(
    tenant_id: str, ctx: Annotated[Ctx, Depends(require("tenant:read", "tenant"))]
) -> None:
    _visible(ctx, tenant_id)  # another tenant's id: 404, as for every object
    ctx.check("platform:tenants")
    with system_scope():
        async with ctx.db.transaction() as s:
            await service.delete_tenant(s, tenant_id)
    ctx.auth.invalidate(tenant_id)
