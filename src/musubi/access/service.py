"""Custom roles, role assignments, and building a :class:`Principal` from a key or a user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import Role, RoleAssignment
from musubi.access.owners import OWNER, ensure_owner_remains
from musubi.access.permissions import BUILTIN_ROLES, PERMISSIONS, SCOPES, expand
from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.errors import InvalidInput, NotFound, PermissionDenied
from musubi.identity.models import ApiKey, User
from musubi.storage.queries import flush_unique, get_one
from musubi.storage.tenants import Tenant
from musubi.tenancy.models import Project, Team
from musubi.tenancy.service import apply_changes

__all__ = [
    "Holdings",
    "assign_role",
    "create_role",
    "custom_role_permissions",
    "delete_role",
    "ensure_covers",
    "holdings",
    "list_assignments",
    "list_roles",
    "principal_for_key",
    "principal_for_user",
    "role_permissions",
    "unassign_role",
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


async def principal_for_key(session: AsyncSession, key: ApiKey) -> Principal | None:
    """The principal of a key (run in the key's tenant scope); None if its user is disabled."""
    user = await session.get(User, key.user_id)
    tenant = await session.get(Tenant, key.tenant_id)
    if user is None or tenant is None:
        return None
    return await principal_for_user(
        session,
        user,
        tenant,
        actor=f"key:msk_{key.prefix}",
        key_id=key.id,
        project_id=key.project_id,
    )


async def principal_for_user(
    session: AsyncSession,
    user: User,
    tenant: Tenant,
    *,
    actor: str,
    key_id: str | None = None,
    project_id: str | None = None,
) -> Principal | None:
    """The principal of ``user`` (a key's or a browser session's); None if disabled."""
    if user.disabled:
        return None
    held = await holdings(session, user.id)
    project_team_id = None
    if project_id is not None:
        project = await session.get(Project, project_id)
        project_team_id = project.team_id if project else None
    return Principal(
        tenant_id=tenant.id,
        user_id=user.id,
        actor=actor,
        key_id=key_id,
        is_root_tenant=tenant.is_root,
        project_id=project_id,
        project_team_id=project_team_id,
        tenant_perms=held.tenant,
        team_perms=held.teams,
        project_perms=held.projects,
    )
