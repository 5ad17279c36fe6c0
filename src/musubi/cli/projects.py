"""``musubi projects list|create|show|update|delete``: the projects of one tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.runtime import AppState
    from musubi.tenancy.models import Project

__all__ = ["projects", "resolve_project"]

COLUMNS = ("id", "name", "team_id", "description", "created_at")


async def resolve_project(session: AsyncSession, value: str) -> str:
    """The id of the bound tenant's project whose id or name is ``value``."""
    from sqlalchemy import or_, select

    from musubi.errors import NotFound
    from musubi.tenancy.models import Project

    found = await session.scalar(
        select(Project.id).where(or_(Project.id == value, Project.name == value))
    )
    if found is None:
        raise NotFound(f"project {value!r} not found", model=Project, id=value)
    return found


def _out(project: Project) -> dict[str, Any]:
    from musubi.api.schemas import ProjectOut

    return ProjectOut.model_validate(project).model_dump(mode="json")


@click.group()
def projects() -> None:
    """Manage the projects of a tenant (default: the root tenant)."""


@projects.command("list")
@click.option("--team", default=None, help="Only the projects of this team (id or name).")
@tenant_option
@json_option
def list_projects(team: str | None, tenant: str | None, as_json: bool) -> None:
    """List projects."""
    from musubi.cli.teams import resolve_team
    from musubi.tenancy import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            only = None if team is None else {await resolve_team(s, team)}
            return [_out(p) for p in await service.list_projects(s, only, None)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@projects.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the project is for.")
@click.option("--team", default=None, help="The team it belongs to (id or name).")
@tenant_option
@json_option
def create_project(
    name: str, description: str, team: str | None, tenant: str | None, as_json: bool
) -> None:
    """Create a project called NAME."""
    from musubi.cli.teams import resolve_team
    from musubi.tenancy import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            team_id = None if team is None else await resolve_team(s, team)
            return _out(await service.create_project(s, name, description, team_id))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@projects.command("show")
@click.argument("project")
@tenant_option
@json_option
def show_project(project: str, tenant: str | None, as_json: bool) -> None:
    """Show PROJECT (id or name)."""
    from musubi.storage.queries import get_one
    from musubi.tenancy.models import Project

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _out(await get_one(s, Project, await resolve_project(s, project), "project"))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@projects.command("update")
@click.argument("project")
@click.option("--name", default=None, help="New name.")
@click.option("--description", default=None, help="New description.")
@click.option("--team", default=None, help="Move it to this team (id or name).")
@click.option("--no-team", is_flag=True, help="Take it out of its team.")
@tenant_option
@json_option
def update_project(
    project: str,
    name: str | None,
    description: str | None,
    team: str | None,
    no_team: bool,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Change PROJECT (id or name)."""
    from musubi.cli.teams import resolve_team
    from musubi.tenancy import service

    if team is not None and no_team:
        raise click.UsageError("give --team or --no-team, not both")
    changes: dict[str, Any] = {
        k: v for k, v in {"name": name, "description": description}.items() if v is not None
    }
    if not changes and team is None and not no_team:
        raise click.UsageError("nothing to change: give --name, --description, --team or --no-team")

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            if team is not None:
                changes["team_id"] = await resolve_team(s, team)
            elif no_team:
                changes["team_id"] = None
            project_id = await resolve_project(s, project)
            return _out(await service.update_project(s, project_id, changes))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@projects.command("delete")
@click.argument("project")
@tenant_option
def delete_project(project: str, tenant: str | None) -> None:
    """Delete PROJECT (id or name) and its project-bound keys."""
    from musubi.tenancy import service

    async def work(state: AppState) -> str:
        async with state.db.transaction() as s:
            project_id = await resolve_project(s, project)
            await service.delete_project(s, project_id)
        return project_id

    click.echo(f"deleted project {run_as_operator(work, tenant=tenant)}")
