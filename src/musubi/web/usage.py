"""The overview's queries: usage and cost per day by team, project, model or key, and how
much of each quota policy is used.

The chart and table read the daily rollups (:mod:`musubi.usage.rollup`) of the closed
days and the ledger rows of the days still open, through the
``ix_usage_records_tenant_at (tenant_id, at)`` index: never the whole usage table
(``bench/dashboard_bench.py`` prints the plans). ``usage_statement`` and
``series_statement`` are the raw grouped reads of a window, kept for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.identity.models import ApiKey
from musubi.quotas.models import QuotaPolicy
from musubi.storage.base import utcnow
from musubi.tenancy.models import Project, Team
from musubi.usage import rollup
from musubi.usage.models import UsageRow

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "QuotaUse",
    "UsageChart",
    "quota_use",
    "series_statement",
    "usage_by_day",
    "usage_statement",
]

_Row = tuple[Any, ...]
Dimension = Literal["model", "team", "project", "key"]
DIMENSIONS: tuple[Dimension, ...] = ("model", "team", "project", "key")
_COLUMN = {
    "model": UsageRow.model,
    "team": UsageRow.team_id,
    "project": UsageRow.project_id,
    "key": UsageRow.key_id,
}
TOP = 6  # series drawn on the chart; the table lists every group


@dataclass
class UsageChart:
    days: list[str]
    series: dict[str, list[float]]  # group label -> cost per day (the chart)
    rows: list[dict[str, Any]]  # every group: requests, tokens, cost, cache hits (the table)
    total_cost: float = 0.0
    total_requests: int = 0

    def chart_data(self) -> dict[str, Any]:
        return {"days": self.days, "series": self.series}


@dataclass
class QuotaUse:
    scope: str
    scope_id: str
    label: str
    limits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warning(self) -> bool:
        return any(x["ratio"] >= 0.8 for x in self.limits)


def _window(tenant_id: str, since: datetime) -> Any:
    return (UsageRow.tenant_id == tenant_id, UsageRow.at >= since)


def usage_statement(tenant_id: str, by: Dimension, since: datetime) -> Select[*_Row]:
    """Per group since ``since``: requests, tokens, cost and cached answers (the table)."""
    column = _COLUMN[by]
    return (
        select(
            column.label("grp"),
            func.count(),
            func.sum(UsageRow.input_tokens + UsageRow.output_tokens),
            func.sum(UsageRow.cost),
            func.sum(func.cast(UsageRow.cached, UsageRow.input_tokens.type)),
        )
        .where(*_window(tenant_id, since))
        .group_by(column)
    )


def series_statement(
    tenant_id: str, by: Dimension, since: datetime, groups: list[str | None]
) -> Select[*_Row]:
    """Cost per day of the chart's groups only (a few of them, whatever the total)."""
    column = _COLUMN[by]
    day = func.date(UsageRow.at).label("day")
    named = [g for g in groups if g is not None]
    where = column.in_(named) if None not in groups else column.in_(named) | column.is_(None)
    return (
        select(day, column.label("grp"), func.sum(UsageRow.cost))
        .where(*_window(tenant_id, since), where)
        .group_by(day, column)
    )


async def _labels(s: AsyncSession, by: Dimension, ids: set[str]) -> dict[str, str]:
    ids.discard("")
    if by == "model" or not ids:
        return {i: i for i in ids}
    if by == "key":
        query = select(ApiKey.id, ApiKey.prefix, ApiKey.name).where(ApiKey.id.in_(ids))
        return {i: f"{n or 'key'} (msk_{p})" for i, p, n in await s.execute(query)}
    model = Team if by == "team" else Project
    found = await s.execute(select(model.id, model.name).where(model.id.in_(ids)))
    return {i: n for i, n in found}


async def usage_by_day(
    s: AsyncSession, tenant_id: str, by: Dimension, days: int, *, today: date | None = None
) -> UsageChart:
    """The table (every group of the window) and the chart (cost per day of the
    :data:`TOP` groups that cost most), from the daily rollups and today's ledger rows.
    ``s`` must be a writable session: closed days not rolled yet are rolled here."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    await rollup.ensure_days(s, tenant_id, first, min(today, rollup.closed_until()))
    totals = await rollup.totals(s, tenant_id, by, first, today)
    order = sorted(totals, key=lambda g: -totals[g].cost)
    labels = await _labels(s, by, set(order))
    table: list[dict[str, Any]] = []
    for grp in order:
        t = totals[grp]
        table.append(
            {
                "group": labels.get(grp, grp) if grp else "(none)",
                "requests": t.requests,
                "tokens": t.tokens,
                "cost": t.cost,
                "cached": t.cached,
                "hit_rate": t.cached / t.requests if t.requests else 0.0,
            }
        )
    axis = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    index = {d: i for i, d in enumerate(axis)}
    top = order[:TOP]
    series: dict[str, list[float]] = {str(r["group"]): [0.0] * days for r in table[:TOP]}
    found = await rollup.read(s, tenant_id, by, first, today, groups=top) if top else []
    for day, grp, t in found:
        if grp in top and day in index:
            label = labels.get(grp, grp) if grp else "(none)"
            series[label][index[day]] = round(series[label][index[day]] + t.cost, 6)
    return UsageChart(
        days=axis,
        series=series,
        rows=table,
        total_cost=sum(r["cost"] for r in table),
        total_requests=sum(r["requests"] for r in table),
    )


_PERIODS = {
    "tokens_per_day": ("tokens", 1),
    "tokens_per_month": ("tokens", 30),
    "cost_per_day": ("cost", 1),
    "cost_per_month": ("cost", 30),
}
_SCOPE_COLUMN = {"team": UsageRow.team_id, "project": UsageRow.project_id, "key": UsageRow.key_id}


async def quota_use(
    s: AsyncSession, tenant_id: str, *, now: datetime | None = None
) -> list[QuotaUse]:
    """Each policy's day and month limits beside what the ledger counted in that period.

    Day limits count since midnight UTC, month limits since the first of the month (as
    the quota windows do); per-minute limits are not shown (they reset before a page is
    read)."""
    now = now or utcnow()
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    out = []
    policies = (await s.scalars(select(QuotaPolicy))).all()
    names: dict[str, str] = {}
    scopes: tuple[Dimension, ...] = ("team", "project", "key")
    for scope in scopes:
        ids = {p.scope_id for p in policies if p.scope == scope}
        names |= await _labels(s, scope, ids)
    for policy in policies:
        label = names.get(policy.scope_id, policy.scope_id) or "whole tenant"
        use = QuotaUse(policy.scope, policy.scope_id, label)
        for name, (what, span) in _PERIODS.items():
            limit = getattr(policy, name, None)
            if limit is None:
                continue
            since = day_start if span == 1 else month_start
            value = (
                UsageRow.cost if what == "cost" else UsageRow.input_tokens + UsageRow.output_tokens
            )
            query = select(func.coalesce(func.sum(value), 0)).where(
                UsageRow.tenant_id == tenant_id, UsageRow.at >= since
            )
            if policy.scope in _SCOPE_COLUMN:
                query = query.where(_SCOPE_COLUMN[policy.scope] == policy.scope_id)
            used = float(await s.scalar(query) or 0)
            ratio = used / float(limit) if limit else 1.0
            use.limits.append({"name": name, "limit": limit, "used": used, "ratio": ratio})
        out.append(use)
    return out
