"""``musubi teams list|create|show|update|delete``: the teams of one tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.runtime import AppState
    from musubi.tenancy.models import Team

__all__ = ["resolve_team", "teams"]

COLUMNS = ("id", "name", "description", "created_at")


async def resolve_team(session: AsyncSession, value: str) -> str:
    """The id of the bound tenant's team whose id or name is ``value``."""
    from sqlalchemy import or_, select

    from musubi.errors import NotFound
    from musubi.tenancy.models import Team

    found = await session.scalar(select(Team.id).where(or_(Team.id == value, Team.name == value)))
    if found is None:
        raise NotFound(f"team {value!r} not found", model=Team, id=value)
    return found


def _out(team: Team) -> dict[str, Any]:
    from musubi.api.schemas import TeamOut

    return TeamOut.model_validate(team).model_dump(mode="json")


@click.group()
def teams() -> None:
    """Manage the teams of a tenant (default: the root tenant)."""


@teams.command("list")
@tenant_option
@json_option
def list_teams(tenant: str | None, as_json: bool) -> None:
    """List teams."""
    from musubi.tenancy import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [_out(t) for t in await service.list_teams(s)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@teams.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the team is for.")
@tenant_option
@json_option
def create_team(name: str, description: str, tenant: str | None, as_json: bool) -> None:
    """Create a team called NAME."""
    from musubi.tenancy import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _out(await service.create_team(s, name, description))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@teams.command("show")
@click.argument("team")
@tenant_option
@json_option
def show_team(team: str, tenant: str | None, as_json: bool) -> None:
    """Show TEAM (id or name)."""
    from musubi.storage.queries import get_one
    from musubi.tenancy.models import Team

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _out(await get_one(s, Team, await resolve_team(s, team), "team"))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@teams.command("update")
@click.argument("team")
@click.option("--name", default=None, help="New name.")
@click.option("--description", default=None, help="New description.")
@tenant_option
@json_option
def update_team(
    team: str, name: str | None, description: str | None, tenant: str | None, as_json: bool
) -> None:
    """Change TEAM (id or name)."""
    from musubi.tenancy import service

    changes = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give --name and/or --description")

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _out(await service.update_team(s, await resolve_team(s, team), changes))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@teams.command("delete")
@click.argument("team")
@tenant_option
def delete_team(team: str, tenant: str | None) -> None:
    """Delete TEAM (id or name); its projects stay, without a team."""
    from musubi.tenancy import service

    async def work(state: AppState) -> str:
        async with state.db.transaction() as s:
            team_id = await resolve_team(s, team)
            await service.delete_team(s, team_id)
        return team_id

    click.echo(f"deleted team {run_as_operator(work, tenant=tenant)}")
