"""API keys: the caller's own, or anyone's with ``users:read``/``users:write`` on the
tenant (and, to mint or revoke, at least the permissions of the key's user)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.schemas import KeyOut, Page
from musubi.identity import service
from musubi.identity.models import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    user_id: str | None = Field(default=None, description="Default: the caller's own user")
    project_id: str | None = Field(default=None, description="Restrict the key to one project")
    expires_at: datetime | None = None


class KeyCreated(BaseModel):
    key: KeyOut
    token: str = Field(description="The secret. Shown once; store it now.")


def _out(key: ApiKey) -> KeyOut:
    return KeyOut.model_validate(key)


@router.get("", summary="List keys (never their secrets)")
async def list_keys(ctx: Annotated[Ctx, Depends(require("keys:read", "own"))]) -> Page[KeyOut]:
    async with ctx.db.read() as s:
        keys = await service.visible_keys(s, ctx.principal)
    return Page(items=[_out(k) for k in keys])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a key (shown once)")
async def create_key(
    body: KeyIn, ctx: Annotated[Ctx, Depends(require("keys:write", "own"))]
) -> KeyCreated:
    async with ctx.db.transaction() as s:
        key, token = await service.issue_key(
            s,
            ctx.principal,
            body.user_id,
            name=body.name,
            project_id=body.project_id,
            expires_at=body.expires_at,
        )
    ctx.auth.invalidate(ctx.tenant_id)  # its prefix may be cached as unknown
    return KeyCreated(key=_out(key), token=token)


@router.get("/{key_id}", summary="Show a key")
async def get_key(key_id: str, ctx: Annotated[Ctx, Depends(require("keys:read", "own"))]) -> KeyOut:
    async with ctx.db.read() as s:
        key = await service.get_key(s, key_id)
        await service.check_key_access(s, ctx.principal, key, write=False)
    return _out(key)


@router.delete("/{key_id}", summary="Revoke a key")
async def revoke_key(
    key_id: str, ctx: Annotated[Ctx, Depends(require("keys:write", "own"))]
) -> KeyOut:
    async with ctx.db.transaction() as s:
        await service.check_key_access(
            s, ctx.principal, await service.get_key(s, key_id), write=True
        )
        key = await service.revoke_key(s, key_id)
    ctx.auth.invalidate(ctx.tenant_id)
    return _out(key)
