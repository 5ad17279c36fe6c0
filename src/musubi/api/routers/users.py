"""Users and service accounts of the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.schemas import Page, Patch, UserOut
from musubi.errors import InvalidInput
from musubi.identity import service

router = APIRouter(prefix="/v1/users", tags=["users"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    display_name: str = Field(default="", max_length=200)
    kind: Literal["human", "service"] = "human"


class UserPatch(Patch):
    display_name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None


@router.get("", summary="List users and service accounts")
async def list_users(
    ctx: Annotated[Ctx, Depends(require("users:read", "tenant"))],
) -> Page[UserOut]:
    ctx.check("users:read")
    async with ctx.db.read() as s:
        users = await service.list_users(s)
    return Page(items=[UserOut.model_validate(u) for u in users])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a user or service account")
async def create_user(
    body: UserIn, ctx: Annotated[Ctx, Depends(require("users:write", "tenant"))]
) -> UserOut:
    ctx.check("users:write")
    async with ctx.db.transaction() as s:
        user = await service.create_user(
            s, body.name, display_name=body.display_name, kind=body.kind
        )
    return UserOut.model_validate(user)


@router.get("/{user_id}", summary="Show a user")
async def get_user(
    user_id: str, ctx: Annotated[Ctx, Depends(require("users:read", "tenant"))]
) -> UserOut:
    ctx.check("users:read")
    async with ctx.db.read() as s:
        return UserOut.model_validate(await service.get_user(s, user_id))


@router.patch("/{user_id}", summary="Change or disable a user")
async def update_user(
    user_id: str, body: UserPatch, ctx: Annotated[Ctx, Depends(require("users:write", "tenant"))]
) -> UserOut:
    async with ctx.db.transaction() as s:
        await service.get_user(s, user_id)
        await service.check_user_access(s, ctx.principal, user_id)
        user = await service.update_user(s, user_id, body.model_dump(exclude_unset=True))
    ctx.auth.invalidate(ctx.tenant_id)
    return UserOut.model_validate(user)


@router.delete("/{user_id}", status_code=204, summary="Delete a user and their keys")
async def delete_user(
    user_id: str, ctx: Annotated[Ctx, Depends(require("users:write", "tenant"))]
) -> None:
    ctx.check("users:write")
    if user_id == ctx.principal.user_id:
        raise InvalidInput("you cannot delete your own user", field="user_id")
    async with ctx.db.transaction() as s:
        await service.get_user(s, user_id)
        await service.check_user_access(s, ctx.principal, user_id)
        await service.delete_user(s, user_id)
    ctx.auth.invalidate(ctx.tenant_id)
