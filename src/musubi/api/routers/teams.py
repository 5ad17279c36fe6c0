"""Teams of the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.schemas import Page, Patch, TeamOut
from musubi.storage.queries import get_one
from musubi.tenancy import service
from musubi.tenancy.models import Team

router = APIRouter(prefix="/v1/teams", tags=["teams"])


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class TeamPatch(Patch):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


@router.get("", summary="List teams")
async def list_teams(ctx: Annotated[Ctx, Depends(require("teams:read", "team"))]) -> Page[TeamOut]:
    only = None
    if not ctx.principal.can("teams:read"):
        only, _ = ctx.principal.scoped_ids("teams:read")
    async with ctx.db.read() as s:
        teams = await service.list_teams(s, only)
    return Page(items=[TeamOut.model_validate(t) for t in teams])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a team")
async def create_team(
    body: TeamIn, ctx: Annotated[Ctx, Depends(require("teams:write", "tenant"))]
) -> TeamOut:
    ctx.check("teams:write")
    async with ctx.db.transaction() as s:
        team = await service.create_team(s, body.name, body.description)
    return TeamOut.model_validate(team)


@router.get("/{team_id}", summary="Show a team")
async def get_team(
    team_id: str, ctx: Annotated[Ctx, Depends(require("teams:read", "team"))]
) -> TeamOut:
    async with ctx.db.read() as s:
        team = await get_one(s, Team, team_id, "team")
    ctx.check("teams:read", team_id=team.id)
    return TeamOut.model_validate(team)


@router.patch("/{team_id}", summary="Change a team")
async def update_team(
    team_id: str, body: TeamPatch, ctx: Annotated[Ctx, Depends(require("teams:write", "team"))]
) -> TeamOut:
    async with ctx.db.transaction() as s:
        ctx.check("teams:write", team_id=(await get_one(s, Team, team_id, "team")).id)
        team = await service.update_team(s, team_id, body.model_dump(exclude_unset=True))
    return TeamOut.model_validate(team)


@router.delete("/{team_id}", status_code=204, summary="Delete a team (its projects stay)")
async def delete_team(
    team_id: str, ctx: Annotated[Ctx, Depends(require("teams:write", "team"))]
) -> None:
    async with ctx.db.transaction() as s:
        ctx.check("teams:write", team_id=(await get_one(s, Team, team_id, "team")).id)
        await service.delete_team(s, team_id)
