"""API keys: the caller's own, or anyone's with ``users:read``/``users:write``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from musubi.access.service import user_permissions
from musubi.api.deps import Ctx, require
from musubi.api.schemas import KeyOut, Page
from musubi.errors import PermissionDenied
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


def _may_manage(ctx: Ctx, key: ApiKey, perm: str) -> None:
    if key.user_id != ctx.principal.user_id:
        ctx.check(perm)


@router.get("", summary="List keys (never their secrets)")
async def list_keys(ctx: Annotated[Ctx, Depends(require("keys:read"))]) -> Page[KeyOut]:
    only = None if ctx.principal.can("users:read") else ctx.principal.user_id
    async with ctx.db.read() as s:
        keys = await service.list_keys(s, only)
    return Page(items=[_out(k) for k in keys])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a key (shown once)")
async def create_key(
    body: KeyIn, ctx: Annotated[Ctx, Depends(require("keys:write"))]
) -> KeyCreated:
    p = ctx.principal
    user_id = body.user_id or p.user_id
    project_id = body.project_id
    if p.project_id is not None:
        if project_id not in (None, p.project_id):
            raise PermissionDenied(
                "keys:write", "a project key can only create keys for its project"
            )
        project_id = p.project_id
    async with ctx.db.transaction() as s:
        if user_id != p.user_id:
            ctx.check("users:write")
            if not await user_permissions(s, user_id) <= p.all_permissions():
                raise PermissionDenied(
                    "users:write", "cannot create a key for a user with permissions you lack"
                )
        key, token = await service.create_key(
            s, user_id, name=body.name, project_id=project_id, expires_at=body.expires_at
        )
    return KeyCreated(key=_out(key), token=token)


@router.get("/{key_id}", summary="Show a key")
async def get_key(key_id: str, ctx: Annotated[Ctx, Depends(require("keys:read"))]) -> KeyOut:
    async with ctx.db.read() as s:
        key = await service.get_key(s, key_id)
    _may_manage(ctx, key, "users:read")
    return _out(key)


@router.delete("/{key_id}", summary="Revoke a key")
async def revoke_key(key_id: str, ctx: Annotated[Ctx, Depends(require("keys:write"))]) -> KeyOut:
    async with ctx.db.transaction() as s:
        _may_manage(ctx, await service.get_key(s, key_id), "users:write")
        key = await service.revoke_key(s, key_id)
    ctx.auth.invalidate(ctx.tenant_id)
    return _out(key)
