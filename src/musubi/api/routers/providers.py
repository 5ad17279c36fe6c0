"""Per-tenant gateway settings: provider credentials (secrets write-only) and routing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.gateway_http import gateway_of
from musubi.gateway import service
from musubi.gateway.config import DEFAULT_TASKS, RouterConfig

router = APIRouter(prefix="/v1/gateway", tags=["gateway"])

Read = Annotated[Ctx, Depends(require("providers:read", "tenant"))]
Write = Annotated[Ctx, Depends(require("providers:write", "tenant"))]


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(description="openai, azure, anthropic, gemini, bedrock, mistral…")
    api_key: str | None = Field(
        default=None,
        description="Write-only. Omitted: keep the stored one, unless base_url, provider or "
        "region changes (then it must be sent again)",
    )
    base_url: str = Field(
        default="",
        max_length=500,
        description="Empty: the provider's own. http(s) only; private, loopback and "
        "link-local addresses only where the operator allows them (MUSUBI_EGRESS_ALLOW)",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="api_version, region…")
    models: list[str] = Field(default_factory=list, description="Empty: every catalogue model")
    weight: float = Field(default=1.0, ge=0)


@router.get("/providers", summary="List provider credentials (never their secrets)")
async def list_providers(ctx: Read) -> dict[str, Any]:
    async with ctx.db.read() as s:
        rows = await service.list_credentials(s)
    return {"items": [service.public_credential(r) for r in rows]}


@router.put("/providers/{name}", summary="Set a provider credential (create or replace)")
async def set_provider(name: str, body: CredentialIn, ctx: Write) -> dict[str, Any]:
    gw = gateway_of(ctx)
    async with ctx.db.transaction() as s:
        row = await service.set_credential(
            s,
            gw.box,
            name=name,
            registry=gw.registry,
            egress=gw.egress.for_tenant(ctx.tenant_id),
            **body.model_dump(),
        )
        out = service.public_credential(row)
    gw.invalidate(ctx.tenant_id)
    return out


@router.delete("/providers/{name}", summary="Delete a provider credential")
async def delete_provider(name: str, ctx: Write) -> dict[str, Any]:
    gw = gateway_of(ctx)
    async with ctx.db.transaction() as s:
        out = service.public_credential(await service.delete_credential(s, name))
    gw.invalidate(ctx.tenant_id)
    return out


@router.get("/config", summary="The tenant's router configuration, with defaults")
async def get_config(ctx: Read) -> dict[str, Any]:
    async with ctx.db.read() as s:
        config = await service.get_config(s)
    return {**config.model_dump(), "default_tasks": DEFAULT_TASKS}


@router.put("/config", summary="Replace the tenant's router configuration")
async def put_config(body: RouterConfig, ctx: Write) -> dict[str, Any]:
    gw = gateway_of(ctx)
    async with ctx.db.transaction() as s:
        config = await service.set_config(s, body)
    gw.invalidate(ctx.tenant_id)
    return config.model_dump()


@router.get("/catalogue", summary="The model catalogue: providers, context, prices")
async def catalogue(ctx: Annotated[Ctx, Depends(require("models:use", "own"))]) -> dict[str, Any]:
    gw = gateway_of(ctx)
    table = await gw.table(ctx.tenant_id)
    usable = set(table.usable_models())
    items = [{**m.public(), "usable": m.name in usable} for m in gw.catalogue.models.values()]
    return {"items": items}
