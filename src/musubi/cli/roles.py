"""``musubi roles …``: built-in and custom roles, permissions, and role assignments."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.access.models import Role, RoleAssignment
    from musubi.runtime import AppState

__all__ = ["roles"]

ROLE_COLUMNS = ("id", "name", "builtin", "description", "permissions")
ASSIGNMENT_COLUMNS = ("id", "user_id", "role", "scope", "scope_id", "created_at")
ROLE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # as the API's RoleIn


async def _resolve(session: AsyncSession, value: str) -> str:
    """The id of the bound tenant's custom role whose id or name is ``value``."""
    from sqlalchemy import or_, select

    from musubi.access.models import Role
    from musubi.errors import NotFound

    found = await session.scalar(select(Role.id).where(or_(Role.id == value, Role.name == value)))
    if found is None:
        raise NotFound(f"custom role {value!r} not found", model=Role, id=value)
    return found


def _custom(role: Role) -> dict[str, Any]:
    from musubi.api.schemas import RoleOut

    out = RoleOut(
        id=role.id,
        name=role.name,
        description=role.description,
        permissions=role.permissions,
        builtin=False,
    )
    return out.model_dump(mode="json")


def _builtin(name: str) -> dict[str, Any]:
    from musubi.access.permissions import BUILTIN_ROLES

    perms = sorted(BUILTIN_ROLES[name])
    return {
        "id": None,
        "name": name,
        "builtin": True,
        "description": "built-in",
        "permissions": perms,
    }


def _assignment(a: RoleAssignment) -> dict[str, Any]:
    from musubi.api.schemas import AssignmentOut

    return AssignmentOut.model_validate(a).model_dump(mode="json")


@click.group()
def roles() -> None:
    """Manage custom roles and role assignments of a tenant (default: the root tenant)."""


@roles.command("permissions")
@json_option
def list_permissions(as_json: bool) -> None:
    """List every permission a role can hold."""
    from musubi.access.permissions import PERMISSIONS

    rows = [{"permission": p, "description": d} for p, d in PERMISSIONS.items()]
    emit(rows, as_json=as_json)


@roles.command("list")
@tenant_option
@json_option
def list_roles(tenant: str | None, as_json: bool) -> None:
    """List the built-in roles and the tenant's custom roles."""
    from musubi.access import service
    from musubi.access.permissions import BUILTIN_ROLES

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [_custom(r) for r in await service.list_roles(s)]

    rows = [_builtin(n) for n in BUILTIN_ROLES] + run_as_operator(work, tenant=tenant)
    if not as_json:  # the table counts them; `roles show` lists them
        rows = [{**r, "permissions": len(r["permissions"])} for r in rows]
    emit(rows, as_json=as_json, columns=ROLE_COLUMNS)


@roles.command("create")
@click.argument("name")
@click.option(
    "--permission", "permissions", multiple=True, required=True, help="A permission (repeatable)."
)
@click.option("--description", default="", help="What the role is for.")
@tenant_option
@json_option
def create_role(
    name: str, permissions: tuple[str, ...], description: str, tenant: str | None, as_json: bool
) -> None:
    """Create the custom role NAME (see `musubi roles permissions`)."""
    from musubi.access import service

    if not ROLE_NAME.match(name) or len(name) > 100:
        raise click.BadParameter(
            "use lowercase letters, digits, '_', '.', '-' (starting with a letter or digit)",
            param_hint="NAME",
        )

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _custom(await service.create_role(s, name, list(permissions), description))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@roles.command("show")
@click.argument("role")
@tenant_option
@json_option
def show_role(role: str, tenant: str | None, as_json: bool) -> None:
    """Show ROLE (a built-in role name, or a custom role's id or name)."""
    from musubi.access.models import Role
    from musubi.access.permissions import BUILTIN_ROLES
    from musubi.storage.queries import get_one

    if role in BUILTIN_ROLES:
        emit(_builtin(role), as_json=as_json)
        return

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _custom(await get_one(s, Role, await _resolve(s, role), "role"))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@roles.command("update")
@click.argument("role")
@click.option("--description", default=None, help="New description.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    help="The role's permissions (repeatable); replaces the current set.",
)
@tenant_option
@json_option
def update_role(
    role: str,
    description: str | None,
    permissions: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
) -> None:
    """Change the custom role ROLE (id or name). Roles cannot be renamed."""
    from musubi.access import service

    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if permissions:
        changes["permissions"] = list(permissions)
    if not changes:
        raise click.UsageError("nothing to change: give --description and/or --permission")

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _custom(await service.update_role(s, await _resolve(s, role), changes))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@roles.command("delete")
@click.argument("role")
@tenant_option
def delete_role(role: str, tenant: str | None) -> None:
    """Delete the custom role ROLE (id or name); it must not be assigned to anyone."""
    from musubi.access import service

    async def work(state: AppState) -> str:
        async with state.db.transaction() as s:
            role_id = await _resolve(s, role)
            await service.delete_role(s, role_id)
        return role_id

    click.echo(f"deleted role {run_as_operator(work, tenant=tenant)}")


@roles.command("assign")
@click.argument("user")
@click.argument("role")
@click.option("--team", default=None, help="Only on this team (id or name).")
@click.option("--project", default=None, help="Only on this project (id or name).")
@tenant_option
@json_option
def assign(
    user: str, role: str, team: str | None, project: str | None, tenant: str | None, as_json: bool
) -> None:
    """Give USER (id or name) the role ROLE, tenant-wide or on one team or project."""
    from musubi.cli.projects import resolve_project
    from musubi.cli.teams import resolve_team
    from musubi.cli.users import resolve_user
    from musubi.identity.roles import assign_role

    if team is not None and project is not None:
        raise click.UsageError("give --team or --project, not both")

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            user_id = await resolve_user(s, user)
            scope, scope_id = "tenant", ""
            if team is not None:
                scope, scope_id = "team", await resolve_team(s, team)
            elif project is not None:
                scope, scope_id = "project", await resolve_project(s, project)
            a = await assign_role(s, user_id, role, scope=scope, scope_id=scope_id)
            return _assignment(a)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@roles.command("assignments")
@click.option("--user", default=None, help="Only this user's assignments (id or name).")
@tenant_option
@json_option
def list_assignments(user: str | None, tenant: str | None, as_json: bool) -> None:
    """List who holds which role where."""
    from musubi.access import service
    from musubi.cli.users import resolve_user

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            user_id = None if user is None else await resolve_user(s, user)
            return [_assignment(a) for a in await service.list_assignments(s, user_id)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=ASSIGNMENT_COLUMNS)


@roles.command("unassign")
@click.argument("assignment_id")
@tenant_option
def unassign(assignment_id: str, tenant: str | None) -> None:
    """Remove the role assignment ASSIGNMENT_ID (see `musubi roles assignments`)."""
    from musubi.identity.roles import unassign_role

    async def work(state: AppState) -> None:
        async with state.db.transaction() as s:
            await unassign_role(s, assignment_id)

    run_as_operator(work, tenant=tenant)
    click.echo(f"removed role assignment {assignment_id}")
