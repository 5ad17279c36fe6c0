"""Built-in and custom roles, and who holds which role where."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from musubi.access import service
from musubi.access.models import Role
from musubi.access.permissions import BUILTIN_ROLES, PERMISSIONS
from musubi.api.deps import Ctx, require
from musubi.api.schemas import AssignmentOut, Page, Patch, RoleOut
from musubi.errors import PermissionDenied
from musubi.identity import roles as user_roles
from musubi.storage.queries import get_one

router = APIRouter(tags=["roles"])


def _known(perms: list[str] | None) -> list[str] | None:
    unknown = sorted(set(perms or ()) - set(PERMISSIONS))
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(unknown)} (see GET /v1/permissions)")
    return perms


Permissions = Annotated[list[str], Field(max_length=len(PERMISSIONS)), AfterValidator(_known)]


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = Field(default="", max_length=2000)
    permissions: Permissions


class RolePatch(Patch):
    description: str | None = Field(default=None, max_length=2000)
    permissions: Permissions | None = None


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str
    role: str = Field(min_length=1, max_length=100)
    scope: Literal["tenant", "team", "project"] = "tenant"
    scope_id: str = ""


def _custom_out(role: Role) -> RoleOut:
    return RoleOut(
        id=role.id,
        name=role.name,
        description=role.description,
        permissions=role.permissions,
        builtin=False,
    )


def _no_escalation(ctx: Ctx, perms: list[str]) -> None:
    """A custom role is tenant-wide: it may hold only what the caller holds on the tenant."""
    missing = set(perms) - ctx.principal.perms_at()
    if missing:
        raise PermissionDenied(
            "roles:write", f"cannot grant permissions you lack: {', '.join(sorted(missing))}"
        )


@router.get("/v1/permissions", summary="Every permission a role can hold")
async def list_permissions(
    ctx: Annotated[Ctx, Depends(require("roles:read", "tenant"))],
) -> dict[str, str]:
    return PERMISSIONS


@router.get("/v1/roles", summary="List built-in and custom roles")
async def list_roles(
    ctx: Annotated[Ctx, Depends(require("roles:read", "tenant"))],
) -> Page[RoleOut]:
    builtin = [
        RoleOut(id=None, name=n, description="built-in", permissions=sorted(p), builtin=True)
        for n, p in BUILTIN_ROLES.items()
    ]
    async with ctx.db.read() as s:
        custom = [_custom_out(r) for r in await service.list_roles(s)]
    return Page(items=builtin + custom)


@router.post("/v1/roles", status_code=status.HTTP_201_CREATED, summary="Create a custom role")
async def create_role(
    body: RoleIn, ctx: Annotated[Ctx, Depends(require("roles:write", "tenant"))]
) -> RoleOut:
    ctx.check("roles:write")
    _no_escalation(ctx, body.permissions)
    async with ctx.db.transaction() as s:
        role = await service.create_role(s, body.name, body.permissions, body.description)
    return _custom_out(role)


@router.get("/v1/roles/{role_id}", summary="Show a custom role")
async def get_role(
    role_id: str, ctx: Annotated[Ctx, Depends(require("roles:read", "tenant"))]
) -> RoleOut:
    async with ctx.db.read() as s:
        return _custom_out(await get_one(s, Role, role_id, "role"))


@router.patch("/v1/roles/{role_id}", summary="Change a custom role")
async def update_role(
    role_id: str, body: RolePatch, ctx: Annotated[Ctx, Depends(require("roles:write", "tenant"))]
) -> RoleOut:
    ctx.check("roles:write")
    if body.permissions is not None:
        _no_escalation(ctx, body.permissions)
    async with ctx.db.transaction() as s:
        role = await service.update_role(s, role_id, body.model_dump(exclude_unset=True))
    ctx.auth.invalidate(ctx.tenant_id)
    return _custom_out(role)


@router.delete("/v1/roles/{role_id}", status_code=204, summary="Delete an unassigned custom role")
async def delete_role(
    role_id: str, ctx: Annotated[Ctx, Depends(require("roles:write", "tenant"))]
) -> None:
    ctx.check("roles:write")
    async with ctx.db.transaction() as s:
        await service.delete_role(s, role_id)


@router.get("/v1/role-assignments", summary="List role assignments")
async def list_assignments(
    ctx: Annotated[Ctx, Depends(require("roles:read", "project"))],
    user_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[AssignmentOut]:
    async with ctx.db.read() as s:
        items = await service.visible_assignments(s, ctx.principal, user_id)
    return Page(items=[AssignmentOut.model_validate(a) for a in items])


@router.post(
    "/v1/role-assignments", status_code=status.HTTP_201_CREATED, summary="Give a user a role"
)
async def assign_role(
    body: AssignmentIn, ctx: Annotated[Ctx, Depends(require("roles:write", "project"))]
) -> AssignmentOut:
    async with ctx.db.transaction() as s:  # roles:write at the grant's scope: checked there
        a = await user_roles.assign_role(
            s,
            body.user_id,
            body.role,
            scope=body.scope,
            scope_id=body.scope_id,
            granted_by=ctx.principal,
        )
    ctx.auth.invalidate(ctx.tenant_id)
    return AssignmentOut.model_validate(a)


@router.delete("/v1/role-assignments/{assignment_id}", status_code=204, summary="Take a role away")
async def unassign_role(
    assignment_id: str, ctx: Annotated[Ctx, Depends(require("roles:write", "project"))]
) -> None:
    async with ctx.db.transaction() as s:
        await user_roles.unassign_role(s, assignment_id, removed_by=ctx.principal)
    ctx.auth.invalidate(ctx.tenant_id)
