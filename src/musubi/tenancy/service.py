"""Create, read, update and delete tenants, teams and projects; each change is audited.

Functions work on the tenant bound in :mod:`musubi.context`; tenant management
(``create_tenant`` …) runs in system scope because it crosses tenants by nature.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.context import SYSTEM_TENANT
from musubi.errors import InvalidInput
from musubi.storage.queries import flush_unique, get_one
from musubi.storage.tenants import Tenant
from musubi.tenancy.models import Project, Team

__all__ = [
    "apply_changes",
    "create_project",
    "create_team",
    "create_tenant",
    "delete_project",
    "delete_team",
    "delete_tenant",
    "get_tenant",
    "list_projects",
    "list_teams",
    "list_tenants",
    "update_project",
    "update_team",
    "update_tenant",
]


def apply_changes(obj: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Set the given fields; return {field: [old, new]} for the ones that changed."""
    diff: dict[str, Any] = {}
    for key, value in changes.items():
        old = getattr(obj, key)
        if old != value:
            setattr(obj, key, value)
            diff[key] = [old, value]
    return diff


# --- tenants (system scope) -------------------------------------------------------------


async def create_tenant(
    session: AsyncSession, name: str, *, is_root: bool = False, audit_retention_days: int = 365
) -> Tenant:
    tenant = Tenant(name=name, is_root=is_root, audit_retention_days=audit_retention_days)
    session.add(tenant)
    await flush_unique(session, "tenant", name)
    await record(session, "tenant.create", tenant.id, tenant_id=tenant.id, detail={"name": name})
    # The registry: a tenant whose whole chain is deleted is still found by verify.
    await record(
        session, "tenant.create", tenant.id, tenant_id=SYSTEM_TENANT, detail={"name": name}
    )
    await session.flush()  # now, in system scope: the caller may bind the new tenant next
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.name))).all())


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    return await get_one(session, Tenant, tenant_id, "tenant")


async def update_tenant(session: AsyncSession, tenant_id: str, changes: dict[str, Any]) -> Tenant:
    tenant = await get_tenant(session, tenant_id)
    diff = apply_changes(tenant, changes)
    await flush_unique(session, "tenant", changes.get("name"))
    await record(session, "tenant.update", tenant.id, tenant_id=tenant.id, detail=diff)
    return tenant


async def delete_tenant(session: AsyncSession, tenant_id: str) -> None:
    tenant = await get_tenant(session, tenant_id)
    if tenant.is_root:
        raise InvalidInput("the root tenant cannot be deleted", field="id")
    await session.delete(tenant)
    await record(
        session, "tenant.delete", tenant.id, tenant_id=tenant.id, detail={"name": tenant.name}
    )


# --- teams ------------------------------------------------------------------------------


async def create_team(session: AsyncSession, name: str, description: str = "") -> Team:
    team = Team(name=name, description=description)
    session.add(team)
    await flush_unique(session, "team", name)
    await record(session, "team.create", team.id, detail={"name": name})
    return team


async def list_teams(session: AsyncSession, only: set[str] | None = None) -> list[Team]:
    query = select(Team).order_by(Team.name)
    if only is not None:
        query = query.where(Team.id.in_(only))
    return list((await session.scalars(query)).all())


async def update_team(session: AsyncSession, team_id: str, changes: dict[str, Any]) -> Team:
    team = await get_one(session, Team, team_id, "team")
    diff = apply_changes(team, changes)
    await flush_unique(session, "team", changes.get("name"))
    await record(session, "team.update", team.id, detail=diff)
    return team


async def delete_team(session: AsyncSession, team_id: str) -> None:
    team = await get_one(session, Team, team_id, "team")
    await session.delete(team)
    await record(session, "team.delete", team.id, detail={"name": team.name})


# --- projects ---------------------------------------------------------------------------


async def create_project(
    session: AsyncSession,
    name: str,
    description: str = "",
    team_id: str | None = None,
    *,
    repo_path: str | None = None,
) -> Project:
    if team_id is not None:
        await get_one(session, Team, team_id, "team")  # must be this tenant's team
    project = Project(name=name, description=description, team_id=team_id, repo_path=repo_path)
    session.add(project)
    await flush_unique(session, "project", name)
    await record(session, "project.create", project.id, detail={"name": name, "team_id": team_id})
    return project


async def list_projects(
    session: AsyncSession, only_teams: set[str] | None = None, only_projects: set[str] | None = None
) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if only_teams is not None or only_projects is not None:
        query = query.where(
            Project.team_id.in_(only_teams or set()) | Project.id.in_(only_projects or set())
        )
    return list((await session.scalars(query)).all())


async def update_project(
    session: AsyncSession, project_id: str, changes: dict[str, Any]
) -> Project:
    project = await get_one(session, Project, project_id, "project")
    if changes.get("team_id"):
        await get_one(session, Team, changes["team_id"], "team")
    diff = apply_changes(project, changes)
    await flush_unique(session, "project", changes.get("name"))
    await record(session, "project.update", project.id, detail=diff)
    return project


async def delete_project(session: AsyncSession, project_id: str) -> None:
    project = await get_one(session, Project, project_id, "project")
    await session.delete(project)
    await record(session, "project.delete", project.id, detail={"name": project.name})
