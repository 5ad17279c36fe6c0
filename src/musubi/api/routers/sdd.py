"""Spec-driven development of a project, read from its repository on the server.

What the dashboard and the VS Code extension show: requirements with their EARS and
quality findings, review gates, workflow status, and the traceability matrix, gaps and
coverage. Every route is scoped to one project of the caller's tenant (``projects:read``
on it). The library does file and git I/O, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from musubi.api.deps import Ctx, require
from musubi.errors import Conflict
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project

router = APIRouter(prefix="/v1/projects/{project_id}/sdd", tags=["sdd"])

_DIMS = ("design", "tasks", "code", "tests", "commits")


async def project_repo(ctx: Ctx, project_id: str) -> Path:
    async with ctx.db.read() as s:
        project = await get_one(s, Project, project_id, "project")
    ctx.check("projects:read", team_id=project.team_id, project_id=project.id)
    if not project.repo_path:
        raise Conflict(
            f"project {project_id!r} has no repository; set repo_path (PATCH /v1/projects/…)",
            field="repo_path",
        )
    path = Path(project.repo_path)
    if not await asyncio.to_thread(path.is_dir):
        raise Conflict(f"the repository of project {project_id!r} is missing on the server")
    return path


def _requirements(root: Path) -> dict[str, Any]:
    from musubi.sdd.project import load_project
    from musubi.sdd.quality import validate_requirements

    project = load_project(root)
    findings = [*project.all_diagnostics(), *validate_requirements(project.requirements)]
    return {
        "requirements": [
            {
                "id": r.id,
                "title": r.title,
                "file": r.file,
                "line": r.line,
                "priority": r.priority,
                "status": r.status,
                "pattern": r.pattern,
                "statement": r.statement,
                "acceptance_criteria": r.acceptance_criteria,
            }
            for r in project.requirements
        ],
        "diagnostics": [d.model_dump(mode="json") for d in findings],
    }


def _workflow(root: Path) -> dict[str, Any]:
    from musubi.sdd import workflow

    if workflow.load_state(root) is None:
        return {"started": False, "hint": "start one with `musubi workflow start <feature>`"}
    return {"started": True, **workflow.status(root)}


def _gates(root: Path) -> dict[str, Any]:
    from musubi.sdd.gates import run_gates
    from musubi.sdd.project import load_project

    return run_gates(load_project(root)).model_dump(mode="json")


def _trace(root: Path, commits: bool, require_dims: tuple[str, ...]) -> dict[str, Any]:
    from musubi.sdd.project import load_project
    from musubi.sdd.trace.matrix import build_matrix, collect_links, coverage, find_gaps

    project = load_project(root)
    matrix = build_matrix(project, collect_links(project, commits=commits))
    return {
        "matrix": matrix.model_dump(mode="json"),
        "gaps": [g.model_dump(mode="json") for g in find_gaps(matrix, require_dims)],
        "coverage": coverage(matrix),
    }


def _dims(require_: str) -> tuple[str, ...]:
    from musubi.errors import InvalidInput

    dims = tuple(d.strip() for d in require_.split(",") if d.strip())
    bad = [d for d in dims if d not in _DIMS]
    if bad:
        raise InvalidInput(
            f"unknown dimension(s) {', '.join(bad)}; use {', '.join(_DIMS)}", field="require"
        )
    return dims


@router.get("/requirements", summary="Requirements with EARS and quality findings")
async def requirements(
    project_id: str, ctx: Annotated[Ctx, Depends(require("projects:read", "project"))]
) -> dict[str, Any]:
    return await asyncio.to_thread(_requirements, await project_repo(ctx, project_id))


@router.get("/workflow", summary="Workflow stage, blockers and history")
async def workflow_status(
    project_id: str, ctx: Annotated[Ctx, Depends(require("projects:read", "project"))]
) -> dict[str, Any]:
    return await asyncio.to_thread(_workflow, await project_repo(ctx, project_id))


@router.get("/gates", summary="Review gates and constitution checks")
async def gates(
    project_id: str, ctx: Annotated[Ctx, Depends(require("projects:read", "project"))]
) -> dict[str, Any]:
    return await asyncio.to_thread(_gates, await project_repo(ctx, project_id))


@router.get("/trace", summary="Traceability matrix, gaps and coverage")
async def trace(
    project_id: str,
    ctx: Annotated[Ctx, Depends(require("projects:read", "project"))],
    commits: Annotated[bool, Query(description="Also read links from git log")] = True,
    require_: Annotated[
        str, Query(alias="require", description="Links each requirement needs")
    ] = "design,code,tests",
) -> dict[str, Any]:
    dims = _dims(require_)
    return await asyncio.to_thread(_trace, await project_repo(ctx, project_id), commits, dims)


def _impact(root: Path, requirement_id: str) -> dict[str, Any]:
    from musubi.sdd.project import load_project
    from musubi.sdd.trace.matrix import build_matrix, collect_links, impact

    project = load_project(root)
    matrix = build_matrix(project, collect_links(project, commits=False))
    return impact(project, matrix, requirement_id)


async def impact_as(ctx: Ctx, project_id: str, requirement_id: str) -> dict[str, Any]:
    """What a change to a requirement touches (``musubi trace impact``; the MCP tool)."""
    return await asyncio.to_thread(_impact, await project_repo(ctx, project_id), requirement_id)
