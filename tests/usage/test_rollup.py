"""Daily rollups give the same figures as the ledger rows they sum, per dimension; open
days are read live; a day rolled before a late row arrives rolls again once forgotten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from musubi.audit.signing import Signer
from musubi.context import bind_tenant
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.usage import rollup
from musubi.usage.models import UsageDay, UsageRow
from musubi.web.usage import usage_by_day

TODAY = datetime.now(UTC).date()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, audit_signer=Signer.generate())
    await upgrade(database)
    yield database
    await database.dispose()


def _row(i: int, day: date, tenant: str, **kw: Any) -> dict[str, Any]:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + timedelta(minutes=i)
    return {
        "id": f"use_{tenant}_{day}_{i}_{kw.get('model', '')}",
        "tenant_id": tenant,
        "at": at,
        "team_id": ["team_a", "team_b", None][i % 3],
        "project_id": None,
        "key_id": "key_1",
        "model": kw.get("model", ["m1", "m2"][i % 2]),
        "provider": "p",
        "input_tokens": 100 + i,
        "output_tokens": 10,
        "cached": i % 4 == 0,
        "cost": 0.001 * (i + 1),
        "latency_ms": 1.0,
        "outcome": "success",
    }


async def _insert(db: Database, tenant: str, rows: list[dict[str, Any]]) -> None:
    with bind_tenant(tenant):
        async with db.transaction() as s:
            await s.execute(insert(UsageRow), rows)


async def test_rollups_match_the_ledger_and_late_rows_roll_again(db: Database) -> None:
    rows = [_row(i, TODAY - timedelta(days=d), "ten_a") for d in range(10) for i in range(12)]
    await _insert(db, "ten_a", rows)
    await _insert(db, "ten_b", [_row(i, TODAY - timedelta(days=1), "ten_b") for i in range(5)])
    with bind_tenant("ten_a"):
        async with db.transaction() as s:
            chart = await usage_by_day(s, "ten_a", "team", 10)
            rolled = await s.scalar(
                select(func.count()).where(UsageDay.tenant_id == "ten_a", UsageDay.dim == "done")
            )
    assert rolled == 10 - (TODAY - rollup.closed_until()).days  # closed days only
    by_team = {r["group"]: r for r in chart.rows}
    expected = sum(r["cost"] for r in rows if r["team_id"] == "team_a")
    assert by_team["team_a"]["cost"] == pytest.approx(expected)
    assert sum(r["requests"] for r in chart.rows) == len(rows)  # ten_b's rows are not here
    assert by_team["(none)"]["requests"] == 40
    assert chart.days[-1] == TODAY.isoformat()
    assert sum(chart.series["team_a"]) == pytest.approx(expected, abs=1e-5)

    # A late row for a closed, rolled day is not counted until that day is forgotten.
    day = TODAY - timedelta(days=5)
    await _insert(db, "ten_a", [_row(99, day, "ten_a", model="late")])
    with bind_tenant("ten_a"):
        async with db.transaction() as s:
            before = await usage_by_day(s, "ten_a", "model", 10)
            await rollup.forget(s, "ten_a", [day])
        async with db.transaction() as s:
            after = await usage_by_day(s, "ten_a", "model", 10)
    assert "late" not in {r["group"] for r in before.rows}
    assert {r["group"] for r in after.rows} == {"m1", "m2", "late"}
