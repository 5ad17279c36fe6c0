"""No change without its event, no event without its change."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from musubi.audit.models import AuditEvent
from musubi.context import bind_tenant, system_scope
from musubi.errors import Conflict
from musubi.storage.database import Database
from musubi.tenancy import service as tenancy
from musubi.tenancy.models import Team


async def counts(db: Database) -> tuple[int, int]:
    with system_scope():
        async with db.read() as s:
            teams = await s.scalar(select(func.count()).select_from(Team))
            events = await s.scalar(select(func.count()).select_from(AuditEvent))
    return int(teams or 0), int(events or 0)


async def make_tenant(db: Database) -> str:
    with system_scope():
        async with db.transaction() as s:
            return (await tenancy.create_tenant(s, "acme")).id


async def test_failed_transaction_leaves_neither_change_nor_event(db: Database) -> None:
    tenant = await make_tenant(db)
    before = await counts(db)
    with bind_tenant(tenant), pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await tenancy.create_team(s, "core")  # change + audit event, both flushed
            raise RuntimeError("something later in the same unit of work failed")
    assert await counts(db) == before


async def test_constraint_violation_rolls_back_the_event(db: Database) -> None:
    tenant = await make_tenant(db)
    with bind_tenant(tenant):
        async with db.transaction() as s:
            await tenancy.create_team(s, "core")
        before = await counts(db)
        with pytest.raises(Conflict):
            async with db.transaction() as s:
                await tenancy.create_team(s, "core")
    assert await counts(db) == before


async def test_failed_audit_append_rolls_back_the_change(database_url: str) -> None:
    from musubi.storage.migrate import upgrade

    unsigned = Database(database_url)  # no signer: the audit append raises
    try:
        await upgrade(unsigned)
        with system_scope(), pytest.raises(RuntimeError, match="audit signer"):
            async with unsigned.transaction() as s:
                await tenancy.create_tenant(s, "acme")
        with system_scope():
            async with unsigned.read() as s:
                assert await s.scalar(select(func.count()).select_from(Team)) == 0
                from musubi.storage.tenants import Tenant

                assert await s.scalar(select(func.count()).select_from(Tenant)) == 0
    finally:
        await unsigned.dispose()
