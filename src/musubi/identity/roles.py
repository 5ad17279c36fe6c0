"""Giving a user a role and taking it away.

The roles themselves and what they grant are :mod:`musubi.access`; assigning one needs the
user (it must exist in the tenant), and removing the owner role needs the owner rule
(:mod:`musubi.identity.owners`: the tenant keeps an enabled owner), so both live here,
above access. Each change is audited.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import RoleAssignment
from musubi.access.permissions import SCOPES
from musubi.access.principal import Principal
from musubi.access.service import role_permissions
from musubi.audit.service import record
from musubi.errors import InvalidInput, NotFound, PermissionDenied
from musubi.identity.models import User
from musubi.identity.owners import OWNER, ensure_owner_remains
from musubi.storage.queries import flush_unique, get_one
from musubi.tenancy.models import Project, Team

__all__ = ["assign_role", "unassign_role"]


async def _scope_target(
    session: AsyncSession, scope: str, scope_id: str
) -> tuple[str | None, str | None]:
    """(team_id, project_id) a grant at ``scope`` lands on; raises NotFound if missing."""
    if scope == "tenant":
        return None, None
    if scope == "team":
        return (await get_one(session, Team, scope_id, "team")).id, None
    project = await get_one(session, Project, scope_id, "project")
    return project.team_id, project.id


async def assign_role(
    session: AsyncSession,
    user_id: str,
    role: str,
    *,
    scope: str = "tenant",
    scope_id: str = "",
    granted_by: Principal | None = None,
) -> RoleAssignment:
    """Give ``user_id`` a role. The caller needs ``roles:write`` at the scope of the grant
    and every permission of the role at that scope or above: what it holds on one project
    does not count towards a tenant-wide grant."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    await get_one(session, User, user_id, "user")
    if scope == "tenant":
        scope_id = ""
    team_id, project_id = await _scope_target(session, scope, scope_id)
    perms = await role_permissions(session, role)
    if granted_by is not None:
        _may_grant(granted_by, role, perms, team_id=team_id, project_id=project_id, verb="grant")
    assignment = RoleAssignment(user_id=user_id, role=role, scope=scope, scope_id=scope_id)
    session.add(assignment)
    await flush_unique(session, "role assignment", f"{role}@{scope}:{scope_id}")
    await record(
        session,
        "role.assign",
        user_id,
        detail={"role": role, "scope": scope, "scope_id": scope_id, "assignment": assignment.id},
    )
    return assignment


def _may_grant(
    caller: Principal,
    role: str,
    perms: frozenset[str],
    *,
    team_id: str | None,
    project_id: str | None,
    verb: str,
) -> None:
    if not caller.can("roles:write", team_id=team_id, project_id=project_id):
        raise PermissionDenied("roles:write")
    missing = perms - caller.perms_at(team_id=team_id, project_id=project_id)
    if missing:
        raise PermissionDenied(
            "roles:write",
            f"cannot {verb} role {role!r} at this scope: it holds permissions you lack "
            f"there ({', '.join(sorted(missing))})",
        )


async def unassign_role(
    session: AsyncSession, assignment_id: str, *, removed_by: Principal | None = None
) -> None:
    """Take a role away. The caller needs what granting it would need (an admin cannot take
    the owner role from an owner); the tenant's last owner keeps the owner role."""
    a = await get_one(session, RoleAssignment, assignment_id, "role assignment")
    if removed_by is not None:
        try:
            team_id, project_id = await _scope_target(session, a.scope, a.scope_id)
        except NotFound:  # its team or project is gone: a tenant-level cleanup
            team_id, project_id = None, None
        perms = await role_permissions(session, a.role)
        _may_grant(removed_by, a.role, perms, team_id=team_id, project_id=project_id, verb="remove")
    if a.role == OWNER and a.scope == "tenant":
        await ensure_owner_remains(session, a.user_id, change="remove the owner role")
    await session.delete(a)
    await record(
        session,
        "role.unassign",
        a.user_id,
        detail={"role": a.role, "scope": a.scope, "scope_id": a.scope_id},
    )
