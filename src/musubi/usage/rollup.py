"""Daily rollups of the usage ledger, per dimension (model, team, project, key).

A chart of a month over a million usage rows must not read them all on each view. Closed
days (UTC, ended more than :data:`SETTLE` ago, so the ledger's batched writer has caught
up) are summed once into ``usage_days`` and read from there; the days still open are read
from ``usage_records`` through its ``(tenant_id, at)`` index. A day is rolled the first
time a query needs it (one grouped read of that day's index range per dimension), in its
own transaction; two readers rolling the same day insert the same rows, and the second
insert is ignored.

A usage row written for a day after that day was rolled (a spool replayed days after its
process died) is not in the rollup: :func:`forget` drops days so that they roll again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.storage.base import utcnow
from musubi.storage.database import insert_ignoring_conflicts
from musubi.usage.models import UsageDay, UsageRow

__all__ = [
    "DIMS",
    "SETTLE",
    "Totals",
    "closed_until",
    "days_statement",
    "ensure_days",
    "forget",
    "ledger_statement",
    "read",
    "totals",
]

DIMS = ("model", "team", "project", "key")
SETTLE = timedelta(minutes=15)
_COLUMN = {
    "model": UsageRow.model,
    "team": UsageRow.team_id,
    "project": UsageRow.project_id,
    "key": UsageRow.key_id,
}
_TABLE = cast(Table, UsageDay.__table__)


@dataclass
class Totals:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0
    cached: int = 0

    def add(self, requests: int, tokens: int, cost: float, cached: int) -> None:
        self.requests += int(requests or 0)
        self.tokens += int(tokens or 0)
        self.cost += float(cost or 0)
        self.cached += int(cached or 0)


def ledger_statement(tenant_id: str, column: Any, lo: datetime, hi: datetime | None) -> Any:
    """Ledger rows of ``lo..hi`` grouped by day and ``column``: requests, tokens, cost,
    cached (a search of the ``(tenant_id, at)`` index range)."""
    bucket = func.date(UsageRow.at)
    where = [UsageRow.tenant_id == tenant_id, UsageRow.at >= lo]
    if hi is not None:
        where.append(UsageRow.at < hi)
    return (
        select(
            bucket,
            column,
            func.count(),
            func.sum(UsageRow.input_tokens + UsageRow.output_tokens),
            func.sum(UsageRow.cost),
            func.sum(func.cast(UsageRow.cached, UsageRow.input_tokens.type)),
        )
        .where(*where)
        .group_by(bucket, column)
    )


def days_statement(tenant_id: str, dim: str, first: date, last: date) -> Any:
    """Rolled-up rows of ``first..last`` for one dimension (a primary-key range)."""
    return select(
        UsageDay.day,
        UsageDay.grp,
        UsageDay.requests,
        UsageDay.tokens,
        UsageDay.cost,
        UsageDay.cached,
    ).where(
        UsageDay.tenant_id == tenant_id,
        UsageDay.dim == dim,
        UsageDay.day >= first.isoformat(),
        UsageDay.day <= last.isoformat(),
    )


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def closed_until(now: datetime | None = None) -> date:
    """The last day that is closed (rolled up rather than read raw)."""
    return ((now or utcnow()) - SETTLE).date() - timedelta(days=1)


async def ensure_days(s: AsyncSession, tenant_id: str, first: date, last: date) -> int:
    """Roll up the closed days in ``first..last`` not rolled yet; returns how many."""
    if last < first:
        return 0
    done = set(
        await s.scalars(
            select(UsageDay.day).where(
                UsageDay.tenant_id == tenant_id,
                UsageDay.dim == "done",
                UsageDay.day >= first.isoformat(),
                UsageDay.day <= last.isoformat(),
            )
        )
    )
    missing = [
        d
        for i in range((last - first).days + 1)
        if (d := first + timedelta(days=i)).isoformat() not in done
    ]
    if not missing:
        return 0
    lo, hi = _start(missing[0]), _start(missing[-1] + timedelta(days=1))
    wanted = {d.isoformat() for d in missing}
    rows: list[dict[str, Any]] = []
    for dim, column in _COLUMN.items():
        query = ledger_statement(tenant_id, column, lo, hi)
        for d, grp, n, tokens, cost, cached in await s.execute(query):
            if str(d)[:10] in wanted:
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "dim": dim,
                        "day": str(d)[:10],
                        "grp": grp or "",
                        "requests": int(n),
                        "tokens": int(tokens or 0),
                        "cost": float(cost or 0),
                        "cached": int(cached or 0),
                    }
                )
    zero = {"requests": 0, "tokens": 0, "cost": 0.0, "cached": 0, "grp": "", "dim": "done"}
    rows += [{**zero, "tenant_id": tenant_id, "day": d} for d in sorted(wanted)]
    for i in range(0, len(rows), 500):
        await s.execute(insert_ignoring_conflicts(s, _TABLE), rows[i : i + 500])
    return len(missing)


async def forget(s: AsyncSession, tenant_id: str, days: Iterable[date]) -> None:
    """Drop the rollups of ``days``: they roll again from the ledger when next needed."""
    names = [d.isoformat() for d in days]
    await s.execute(
        delete(UsageDay).where(UsageDay.tenant_id == tenant_id, UsageDay.day.in_(names))
    )


async def totals(
    s: AsyncSession, tenant_id: str, dim: str, first: date, last: date
) -> dict[str, Totals]:
    """Per group, the totals of ``first..last``: summed by the database over the rolled
    days, plus the open days' ledger rows (:func:`ensure_days` first)."""
    out: dict[str, Totals] = {}
    closed = min(last, closed_until())
    if closed >= first:
        query = (
            select(
                UsageDay.grp,
                func.sum(UsageDay.requests),
                func.sum(UsageDay.tokens),
                func.sum(UsageDay.cost),
                func.sum(UsageDay.cached),
            )
            .where(
                UsageDay.tenant_id == tenant_id,
                UsageDay.dim == dim,
                UsageDay.day >= first.isoformat(),
                UsageDay.day <= closed.isoformat(),
            )
            .group_by(UsageDay.grp)
        )
        for grp, n, tokens, cost, cached in await s.execute(query):
            out.setdefault(grp, Totals()).add(n, tokens, cost, cached)
    open_from = max(first, closed + timedelta(days=1))
    if open_from <= last:
        for _, grp, t in await read(s, tenant_id, dim, open_from, last):
            out.setdefault(grp, Totals()).add(t.requests, t.tokens, t.cost, t.cached)
    return out


async def read(
    s: AsyncSession,
    tenant_id: str,
    dim: str,
    first: date,
    last: date,
    *,
    groups: list[str] | None = None,
) -> list[tuple[str, str, Totals]]:
    """(day, group, totals) of ``first..last`` for one dimension: rolled days from
    ``usage_days`` (:func:`ensure_days` first), days still open from the ledger."""
    out: list[tuple[str, str, Totals]] = []
    closed = min(last, closed_until())
    if closed >= first:
        query = days_statement(tenant_id, dim, first, closed)
        if groups is not None:
            query = query.where(UsageDay.grp.in_(groups))
        for day, grp, n, tokens, cost, cached in await s.execute(query):
            t = Totals()
            t.add(n, tokens, cost, cached)
            out.append((day, grp, t))
    open_from = max(first, closed + timedelta(days=1))
    if open_from <= last:
        raw = ledger_statement(tenant_id, _COLUMN[dim], _start(open_from), None)
        if groups is not None:
            column, named = _COLUMN[dim], [g for g in groups if g]
            raw = raw.where(
                column.in_(named) | column.is_(None) if "" in groups else column.in_(named)
            )
        for d, grp, n, tokens, cost, cached in await s.execute(raw):
            if str(d)[:10] <= last.isoformat():
                t = Totals()
                t.add(n, tokens, cost, cached)
                out.append((str(d)[:10], grp or "", t))
    return out
