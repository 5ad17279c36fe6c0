"""Bulk role assignments: idempotent; a row already in place is ``unchanged``.

Columns: ``user`` (id or name), ``role`` (built-in or custom), ``scope`` (tenant | team |
project; default tenant), ``target`` (the team or project, id or name; empty for tenant).
Nobody can grant a role holding permissions they lack (as ``POST /v1/role-assignments``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access import service
from musubi.access.models import RoleAssignment
from musubi.bulk.base import Caller, Kind, Outcome, Ref, names, resolve
from musubi.errors import InvalidInput
from musubi.identity.models import User
from musubi.identity.roles import assign_role
from musubi.tenancy.models import Project, Team

__all__ = ["ASSIGNMENTS"]


class AssignmentItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=100)
    scope: Literal["tenant", "team", "project"] = "tenant"
    target: Ref = Field(default=None, max_length=200)


async def _scope_id(session: AsyncSession, item: AssignmentItem) -> str:
    if item.scope == "tenant":
        if item.target is not None:
            raise InvalidInput("target must be empty for scope tenant", field="target")
        return ""
    if item.target is None:
        raise InvalidInput(f"target (the {item.scope}) is required", field="target")
    return await resolve(session, Team if item.scope == "team" else Project, item.target)


async def _apply(session: AsyncSession, caller: Caller, item: AssignmentItem) -> Outcome:
    user_id = await resolve(session, User, item.user)
    scope_id = await _scope_id(session, item)
    existing = await session.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.user_id == user_id,
            RoleAssignment.role == item.role,
            RoleAssignment.scope == item.scope,
            RoleAssignment.scope_id == scope_id,
        )
    )
    if existing is not None:
        return Outcome("unchanged", existing)
    a = await assign_role(
        session,
        user_id,
        item.role,
        scope=item.scope,
        scope_id=scope_id,
        granted_by=caller.principal,
    )
    return Outcome("created", a.id)


async def _export(session: AsyncSession, caller: Caller) -> list[dict[str, Any]]:
    all_names: dict[str, str] = {}
    for model in (User, Team, Project):
        all_names |= await names(session, model)
    return [
        {
            "user": all_names[a.user_id],
            "role": a.role,
            "scope": a.scope,
            "target": all_names.get(a.scope_id, ""),
        }
        for a in (
            await service.list_assignments(session)
            if caller.principal is None
            else await service.visible_assignments(session, caller.principal)
        )
    ]


ASSIGNMENTS = Kind(
    name="assignments",
    read="roles:read",
    write="roles:write",
    item=AssignmentItem,
    columns=("user", "role", "scope", "target"),
    apply=_apply,
    export=_export,
    tenant_wide_write=True,
)
