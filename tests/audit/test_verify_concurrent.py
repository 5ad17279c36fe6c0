"""Verify while other transactions keep appending: no false breaks, real tampering found.

On PostgreSQL (READ COMMITTED by default) a verify that read the head and the events in
separate snapshots saw events committed in between and reported them as tampering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text

from musubi.audit import service as audit
from musubi.context import bind_tenant, system_scope
from musubi.identity.bootstrap import bootstrap
from musubi.storage.database import Database
from musubi.tenancy.service import create_team
from tests.conftest import Api

WRITERS = 4
VERIFIERS = 2
ROUNDS = 25


async def _verify(db: Database, tenant_id: str) -> audit.VerifyReport:
    """The verify path of the API and the CLI."""
    with bind_tenant(tenant_id):
        async with audit.snapshot(db) as s:
            return await audit.verify(s, tenant_id)


async def _root(db: Database) -> str:
    created = await bootstrap(db)
    assert created is not None
    return created.tenant_id


async def _writing(db: Database, tenant_id: str, stop: asyncio.Event, w: int) -> int:
    """Append audit events through the service layer until told to stop; how many."""
    n = 0
    while not stop.is_set():
        with bind_tenant(tenant_id):
            async with db.transaction() as s:
                await create_team(s, f"w{w}-{n}")
        n += 1
    return n


async def _during_writes(
    db: Database,
    tenant_id: str,
    rounds: int,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> list[audit.VerifyReport]:
    """``rounds`` verifies by each of VERIFIERS tasks while WRITERS tasks append.

    ``meanwhile`` runs once the writers are going, before the first verify.
    """
    stop = asyncio.Event()

    async def verifying() -> list[audit.VerifyReport]:
        reports = []
        for _ in range(rounds):
            reports.append(await _verify(db, tenant_id))
        return reports

    async with asyncio.TaskGroup() as tg:
        writers = [tg.create_task(_writing(db, tenant_id, stop, w)) for w in range(WRITERS)]
        if meanwhile is not None:
            await meanwhile()
        verifiers = [tg.create_task(verifying()) for _ in range(VERIFIERS)]
        try:
            await asyncio.gather(*verifiers)
        finally:
            stop.set()
    assert all(w.result() > 0 for w in writers)
    return [r for v in verifiers for r in v.result()]


async def test_verify_during_writes_reports_ok(db: Database) -> None:
    tenant_id = await _root(db)
    reports = await _during_writes(db, tenant_id, ROUNDS)
    broken = [f"{r.broken.seq}: {r.broken.reason}" for r in reports if r.broken is not None]
    assert not broken, broken
    # the writes really ran during the verifies: the chains they saw kept growing
    assert len({r.last_seq for r in reports}) > ROUNDS // 2
    final = await _verify(db, tenant_id)
    assert final.ok and final.last_seq is not None
    assert final.last_seq >= max(r.last_seq or 0 for r in reports)


async def test_tampering_during_writes_is_still_found(db: Database) -> None:
    tenant_id = await _root(db)

    async def tamper() -> None:
        """An attacker with database access edits an old event while writes go on."""
        await asyncio.sleep(0.05)
        with system_scope():
            async with db.transaction() as s:
                sql = "UPDATE audit_events SET target = 'forged' WHERE tenant_id = :t AND seq = 2"
                await s.execute(text(sql), {"t": tenant_id})

    reports = await _during_writes(db, tenant_id, 5, tamper)
    assert reports and all(r.broken is not None for r in reports)
    for r in reports:
        assert r.broken is not None and r.broken.seq == 2 and "edited" in r.broken.reason


async def test_api_verify_during_writes_reports_ok(api: Api, owner: httpx.AsyncClient) -> None:
    """The same through the server: POST /v1/audit/verify while teams are being created."""
    stop = asyncio.Event()

    async def writing(w: int) -> int:
        n = 0
        while not stop.is_set():
            r = await owner.post("/v1/teams", json={"name": f"w{w}-{n}"})
            assert r.status_code == 201, r.text
            n += 1
        return n

    async def verifying() -> list[dict[str, Any]]:
        return [(await owner.post("/v1/audit/verify")).json() for _ in range(ROUNDS)]

    async with asyncio.TaskGroup() as tg:
        writers = [tg.create_task(writing(w)) for w in range(WRITERS)]
        try:
            reports = await verifying()
        finally:
            stop.set()
    assert all(w.result() > 0 for w in writers)
    broken = [r["broken"] for r in reports if not r["ok"]]
    assert not broken, broken
    assert len({r["last_seq"] for r in reports}) > 1
