"""Custom roles, role assignments, and building a :class:`Principal` from a key or a user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import Role, RoleAssignment
from musubi.access.permissions import BUILTIN_ROLES, PERMISSIONS, SCOPES, expand
from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.errors import InvalidInput, PermissionDenied
from musubi.identity.models import ApiKey, User
from musubi.storage.queries import flush_unique, get_one
from musubi.tenancy.models import Project, Team, Tenant
from musubi.tenancy.service import apply_changes

__all__ = [
    "assign_role",
    "create_role",
    "custom_role_permissions",
    "delete_role",
    "list_assignments",
    "list_roles",
    "principal_for_key",
    "principal_for_user",
    "role_permissions",
    "unassign_role",
    "update_role",
    "user_permissions",
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


async def assign_role(
    session: AsyncSession,
    user_id: str,
    role: str,
    *,
    scope: str = "tenant",
    scope_id: str = "",
    granted_by: Principal | None = None,
) -> RoleAssignment:
    """Give ``user_id`` a role. A caller cannot grant permissions it does not hold itself."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    await get_one(session, User, user_id, "user")
    if scope == "tenant":
        scope_id = ""
    elif scope == "team":
        await get_one(session, Team, scope_id, "team")
    else:
        await get_one(session, Project, scope_id, "project")
    perms = await role_permissions(session, role)
    if granted_by is not None and not perms <= granted_by.all_permissions():
        raise PermissionDenied(
            "roles:write", f"cannot grant role {role!r}: it holds permissions you lack"
        )
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


async def list_assignments(
    session: AsyncSession, user_id: str | None = None
) -> list[RoleAssignment]:
    query = select(RoleAssignment).order_by(RoleAssignment.created_at)
    if user_id is not None:
        query = query.where(RoleAssignment.user_id == user_id)
    return list((await session.scalars(query)).all())


async def unassign_role(session: AsyncSession, assignment_id: str) -> None:
    a = await get_one(session, RoleAssignment, assignment_id, "role assignment")
    await session.delete(a)
    await record(
        session,
        "role.unassign",
        a.user_id,
        detail={"role": a.role, "scope": a.scope, "scope_id": a.scope_id},
    )


async def user_permissions(session: AsyncSession, user_id: str) -> frozenset[str]:
    """Every permission the user holds at any scope."""
    custom = await custom_role_permissions(session)
    perms: set[str] = set()
    for a in await list_assignments(session, user_id):
        perms |= expand(a.role, custom)
    return frozenset(perms)


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
    custom = await custom_role_permissions(session)
    tenant_perms: set[str] = set()
    team_perms: dict[str, frozenset[str]] = {}
    project_perms: dict[str, frozenset[str]] = {}
    for a in await list_assignments(session, user.id):
        perms = expand(a.role, custom)
        if a.scope == "tenant":
            tenant_perms |= perms
        elif a.scope == "team":
            team_perms[a.scope_id] = team_perms.get(a.scope_id, frozenset()) | perms
        else:
            project_perms[a.scope_id] = project_perms.get(a.scope_id, frozenset()) | perms
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
        tenant_perms=frozenset(tenant_perms),
        team_perms=team_perms,
        project_perms=project_perms,
    )
