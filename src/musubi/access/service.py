"""Custom roles, the role assignments a user holds, and whether a caller covers a user.

Giving a user a role and taking it away (which checks the user and the owner rule) is
:mod:`musubi.identity.roles`; the principal of a key or a user is
:mod:`musubi.identity.principals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import Role, RoleAssignment
from musubi.access.permissions import BUILTIN_ROLES, PERMISSIONS, expand
from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.errors import InvalidInput, PermissionDenied
from musubi.storage.queries import flush_unique, get_one
from musubi.tenancy.models import Project
from musubi.tenancy.service import apply_changes

__all__ = [
    "Holdings",
    "create_role",
    "custom_role_permissions",
    "delete_role",
    "ensure_covers",
    "holdings",
    "list_assignments",
    "list_roles",
    "role_permissions",
    "update_role",
    "visible_assignments",
]


def _check_permissions(perms: list[str]) -> list[str]:
    unknown = sorted(set(perms) - set(PERMISSIONS))
    if unknown:
        raise InvalidInput(f"unknown permissions: {', '.join(unknown)}", field="permissions")
    return sorted(set(perms))


async def create_role(
    session: AsyncSession, name: str, permissions: list[str], description: str = ""
) -> Role:
    if name in BUILTIN_ROLES:
        raise InvalidInput(f"{name!r} is a built-in role", field="name")
    role = Role(name=name, permissions=_check_permissions(permissions), description=description)
    session.add(role)
    await flush_unique(session, "role", name)
    await record(
        session, "role.create", role.id, detail={"name": name, "permissions": role.permissions}
    )
    return role


async def list_roles(session: AsyncSession) -> list[Role]:
    return list((await session.scalars(select(Role).order_by(Role.name))).all())


async def update_role(session: AsyncSession, role_id: str, changes: dict[str, Any]) -> Role:
    role = await get_one(session, Role, role_id, "role")
    if "permissions" in changes:
        changes["permissions"] = _check_permissions(changes["permissions"])
    if "name" in changes and changes["name"] != role.name:
        raise InvalidInput("a role cannot be renamed; create a new one", field="name")
    diff = apply_changes(role, changes)
    await record(session, "role.update", role.id, detail=diff)
    return role


async def delete_role(session: AsyncSession, role_id: str) -> None:
    role = await get_one(session, Role, role_id, "role")
    in_use = await session.scalar(select(RoleAssignment.id).where(RoleAssignment.role == role.name))
    if in_use:
        raise InvalidInput(f"role {role.name!r} is still assigned; unassign it first", field="id")
    await session.delete(role)
    await record(session, "role.delete", role.id, detail={"name": role.name})


async def custom_role_permissions(session: AsyncSession) -> dict[str, frozenset[str]]:
    return {r.name: frozenset(r.permissions) for r in await list_roles(session)}


async def role_permissions(session: AsyncSession, role: str) -> frozenset[str]:
    custom = await custom_role_permissions(session)
    if role not in BUILTIN_ROLES and role not in custom:
        raise InvalidInput(f"no role named {role!r}", field="role")
    return expand(role, custom)


async def list_assignments(
    session: AsyncSession, user_id: str | None = None
) -> list[RoleAssignment]:
    query = select(RoleAssignment).order_by(RoleAssignment.created_at)
    if user_id is not None:
        query = query.where(RoleAssignment.user_id == user_id)
    return list((await session.scalars(query)).all())


async def visible_assignments(
    session: AsyncSession, caller: Principal, user_id: str | None = None
) -> list[RoleAssignment]:
    """The assignments ``caller`` may see with ``roles:read``: all of them if it holds it
    on the tenant; else those on the teams and projects where it holds it (and on the
    projects of those teams)."""
    items = await list_assignments(session, user_id)
    if caller.can("roles:read"):
        return items
    teams, projects = caller.scoped_ids("roles:read")
    if caller.project_id is not None:  # a project key: its project, if it holds it there
        ok = caller.can("roles:read", team_id=caller.project_team_id, project_id=caller.project_id)
        teams, projects = set(), {caller.project_id} if ok else set()
    elif teams:
        in_teams = select(Project.id).where(Project.team_id.in_(teams))
        projects |= set((await session.scalars(in_teams)).all())
    return [
        a
        for a in items
        if (a.scope == "team" and a.scope_id in teams)
        or (a.scope == "project" and a.scope_id in projects)
    ]


@dataclass(frozen=True)
class Holdings:
    """What a user holds: on the tenant, and per team and per project."""

    tenant: frozenset[str]
    teams: dict[str, frozenset[str]]
    projects: dict[str, frozenset[str]]


async def holdings(session: AsyncSession, user_id: str) -> Holdings:
    custom = await custom_role_permissions(session)
    tenant: set[str] = set()
    teams: dict[str, frozenset[str]] = {}
    projects: dict[str, frozenset[str]] = {}
    for a in await list_assignments(session, user_id):
        perms = expand(a.role, custom)
        if a.scope == "tenant":
            tenant |= perms
        elif a.scope == "team":
            teams[a.scope_id] = teams.get(a.scope_id, frozenset()) | perms
        else:
            projects[a.scope_id] = projects.get(a.scope_id, frozenset()) | perms
    return Holdings(frozenset(tenant), teams, projects)


async def ensure_covers(
    session: AsyncSession, caller: Principal, user_id: str, *, permission: str, action: str
) -> None:
    """Refuse ``action`` on ``user_id`` (or on their keys) unless ``caller`` holds, at each
    scope, at least what that user holds there: an admin cannot act on an owner, a team
    admin cannot mint a key for a tenant admin (not even one restricted to its project:
    the key would still act, and be audited, as that admin). One's own user is covered."""
    if user_id == caller.user_id:
        return
    held = await holdings(session, user_id)
    project_team = await _project_teams(session, set(held.projects))
    pairs = [(held.tenant, caller.perms_at())]
    pairs += [(p, caller.perms_at(team_id=t)) for t, p in held.teams.items()]
    pairs += [
        (p, caller.perms_at(team_id=project_team.get(pid), project_id=pid))
        for pid, p in held.projects.items()
    ]
    ignore = frozenset() if caller.is_root_tenant else frozenset({"platform:tenants"})
    if any(theirs - ignore - mine for theirs, mine in pairs):
        raise PermissionDenied(permission, f"cannot {action}: that user holds permissions you lack")


async def _project_teams(session: AsyncSession, project_ids: set[str]) -> dict[str, str | None]:
    if not project_ids:
        return {}
    rows = await session.execute(
        select(Project.id, Project.team_id).where(Project.id.in_(project_ids))
    )
    return {pid: team for pid, team in rows}
