"""Bulk projects: create or update by ``name``.

Columns: ``name``, ``description``, ``team`` (id or name; empty: no team), ``repo_path``
(under ``<repos root>/<tenant id>/``, as for ``PATCH /v1/projects/{id}``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.bulk.base import Caller, Kind, Outcome, Ref, names, resolve
from musubi.tenancy import service
from musubi.tenancy.models import Project, Team
from musubi.tenancy.repos import check_repo_path, shown_repo_path

__all__ = ["PROJECTS"]


class ProjectItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    team: Ref = Field(default=None, max_length=200)
    repo_path: Ref = Field(default=None, max_length=1000)


async def _apply(session: AsyncSession, caller: Caller, item: ProjectItem) -> Outcome:
    team_id = None if item.team is None else await resolve(session, Team, item.team)
    repo = None
    if item.repo_path is not None:
        repo = check_repo_path(caller.repos_root, caller.tenant_id, item.repo_path)
    project = await session.scalar(select(Project).where(Project.name == item.name))
    if project is None:
        caller.check("projects:write", team_id=team_id)
        project = await service.create_project(
            session, item.name, item.description, team_id, repo_path=repo
        )
        return Outcome("created", project.id)
    caller.check("projects:write", team_id=project.team_id, project_id=project.id)
    wanted = {"description": item.description, "team_id": team_id, "repo_path": repo}
    given = {"team_id" if f == "team" else f for f in item.model_fields_set}
    changes = {f: v for f, v in wanted.items() if f in given and getattr(project, f) != v}
    if not changes:
        return Outcome("unchanged", project.id)
    if changes.get("team_id"):
        caller.check("projects:write", team_id=changes["team_id"])
    await service.update_project(session, project.id, changes)
    return Outcome("updated", project.id)


async def _export(session: AsyncSession, caller: Caller) -> list[dict[str, Any]]:
    teams: set[str] | None = None
    projects: set[str] | None = None
    p = caller.principal  # the same visibility as GET /v1/projects
    if p is not None and p.project_id is not None:
        teams, projects = set(), {p.project_id}
    elif p is not None and not p.can("projects:read"):
        teams, projects = p.scoped_ids("projects:read")
    team_names = await names(session, Team)
    return [
        {
            "name": x.name,
            "description": x.description,
            "team": team_names.get(x.team_id or "", ""),
            "repo_path": shown_repo_path(caller.repos_root, caller.tenant_id, x.repo_path) or "",
        }
        for x in await service.list_projects(session, teams, projects)
    ]


PROJECTS = Kind(
    name="projects",
    read="projects:read",
    write="projects:write",
    item=ProjectItem,
    columns=("name", "description", "team", "repo_path"),
    apply=_apply,
    export=_export,
)
