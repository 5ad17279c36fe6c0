"""A project's spend today against the daily quotas that apply to it.

What the VS Code extension's status bar shows a developer: the cost and tokens of the
project's gateway calls since midnight UTC (the quota day, as ``musubi.quotas.service``
counts it), from the usage ledger, beside the tightest ``cost_per_day`` and
``tokens_per_day`` of the tenant's, the project's team's and the project's own policies.
``usage:read`` on the project is enough: a developer sees the limits that bind their
project without ``billing:read`` on the whole tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from musubi.api.deps import Ctx, require
from musubi.quotas.models import QuotaPolicy
from musubi.storage.base import utcnow
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project
from musubi.usage.models import UsageRow

router = APIRouter(tags=["quotas"])


def _tightest(values: list[float | int | None]) -> float | int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


@router.get(
    "/v1/projects/{project_id}/spend", summary="The project's spend today and its daily quota"
)
async def spend(
    project_id: str, ctx: Annotated[Ctx, Depends(require("usage:read", "project"))]
) -> dict[str, Any]:
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    async with ctx.db.read() as s:
        project = await get_one(s, Project, project_id, "project")
        ctx.check("usage:read", team_id=project.team_id, project_id=project.id)
        cost, tokens, requests = (
            await s.execute(
                select(
                    func.sum(UsageRow.cost),
                    func.sum(UsageRow.input_tokens + UsageRow.output_tokens),
                    func.count(),
                ).where(UsageRow.project_id == project.id, UsageRow.at >= day)
            )
        ).one()
        scopes = [("tenant", "")]
        if project.team_id:
            scopes.append(("team", project.team_id))
        scopes.append(("project", project.id))
        policies = [
            p
            for p in (await s.scalars(select(QuotaPolicy))).all()
            if (p.scope, p.scope_id) in scopes
        ]
    binding = [p for p in policies if p.cost_per_day is not None or p.tokens_per_day is not None]
    limits = [
        {"scope": p.scope, "cost_per_day": p.cost_per_day, "tokens_per_day": p.tokens_per_day}
        for p in binding
    ]
    return {
        "project_id": project.id,
        "since": day.isoformat(),
        "cost": round(float(cost or 0), 8),
        "tokens": int(tokens or 0),
        "requests": int(requests or 0),
        "cost_per_day": _tightest([p.cost_per_day for p in binding]),
        "tokens_per_day": _tightest([p.tokens_per_day for p in binding]),
        "limits": limits,
    }
