"""Projects of the caller's tenant, visible by tenant, team or project role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.api.deps import Ctx, require
from musubi.api.schemas import Page, Patch, ProjectOut
from musubi.storage.queries import get_one
from musubi.tenancy import service
from musubi.tenancy.models import Project
from musubi.tenancy.repos import check_repo_path, shown_repo_path

router = APIRouter(prefix="/v1/projects", tags=["projects"])


REPO_HELP = (
    "Repository on the server, relative to <repos root>/<tenant id>/ (read by the SDD API); "
    "answered in that form"
)


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    team_id: str | None = None
    repo_path: str | None = Field(default=None, max_length=1000, description=REPO_HELP)


class ProjectPatch(Patch):
    nullable = frozenset({"team_id", "repo_path"})
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    team_id: str | None = None
    repo_path: str | None = Field(default=None, max_length=1000, description=REPO_HELP)


def _out(ctx: Ctx, project: Project) -> ProjectOut:
    out = ProjectOut.model_validate(project)
    root = ctx.state.settings.effective_repos_root
    out.repo_path = shown_repo_path(root, ctx.tenant_id, project.repo_path)
    return out


def _repo(ctx: Ctx, repo_path: str | None) -> str | None:
    if repo_path is None:
        return None
    return check_repo_path(ctx.state.settings.effective_repos_root, ctx.tenant_id, repo_path)


@router.get("", summary="List projects")
async def list_projects(
    ctx: Annotated[Ctx, Depends(require("projects:read", "project"))],
) -> Page[ProjectOut]:
    p = ctx.principal
    teams: set[str] | None = None
    projects: set[str] | None = None
    if p.project_id is not None:
        teams, projects = set(), {p.project_id}
    elif not p.can("projects:read"):
        teams, projects = p.scoped_ids("projects:read")
    async with ctx.db.read() as s:
        items = await service.list_projects(s, teams, projects)
    return Page(items=[_out(ctx, x) for x in items])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a project")
async def create_project(
    body: ProjectIn, ctx: Annotated[Ctx, Depends(require("projects:write", "team"))]
) -> ProjectOut:
    ctx.check("projects:write", team_id=body.team_id)
    async with ctx.db.transaction() as s:
        project = await service.create_project(
            s, body.name, body.description, body.team_id, repo_path=_repo(ctx, body.repo_path)
        )
    return _out(ctx, project)


async def _load(ctx: Ctx, s: AsyncSession, project_id: str, perm: str) -> Project:
    project = await get_one(s, Project, project_id, "project")
    ctx.check(perm, team_id=project.team_id, project_id=project.id)
    return project


@router.get("/{project_id}", summary="Show a project")
async def get_project(
    project_id: str, ctx: Annotated[Ctx, Depends(require("projects:read", "project"))]
) -> ProjectOut:
    async with ctx.db.read() as s:
        return _out(ctx, await _load(ctx, s, project_id, "projects:read"))


@router.patch("/{project_id}", summary="Change a project")
async def update_project(
    project_id: str,
    body: ProjectPatch,
    ctx: Annotated[Ctx, Depends(require("projects:write", "project"))],
) -> ProjectOut:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("repo_path") is not None:
        changes["repo_path"] = _repo(ctx, changes["repo_path"])
    async with ctx.db.transaction() as s:
        await _load(ctx, s, project_id, "projects:write")
        if changes.get("team_id"):
            ctx.check("projects:write", team_id=changes["team_id"])
        project = await service.update_project(s, project_id, changes)
    return _out(ctx, project)


@router.delete("/{project_id}", status_code=204, summary="Delete a project")
async def delete_project(
    project_id: str, ctx: Annotated[Ctx, Depends(require("projects:write", "project"))]
) -> None:
    async with ctx.db.transaction() as s:
        await _load(ctx, s, project_id, "projects:write")
        await service.delete_project(s, project_id)
