"""The data layer scopes every query to the bound tenant; PostgreSQL enforces it too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select, text, update

from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.errors import TenantScopeError
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service
from musubi.tenancy.models import Team


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, audit_signer=Signer.generate())
    await upgrade(database)
    with system_scope():
        async with database.transaction() as s:
            for name in ("a", "b"):
                tenant = await service.create_tenant(s, name)
                with bind_tenant(tenant.id):
                    await service.create_team(s, f"team-of-{name}")
    yield database
    await database.dispose()


async def tenant_ids(db: Database) -> dict[str, str]:
    from musubi.storage.tenants import Tenant

    with system_scope():
        async with db.read() as s:
            return {t.name: t.id for t in (await s.scalars(select(Tenant))).all()}


async def test_queries_see_only_the_bound_tenant(db: Database) -> None:
    ids = await tenant_ids(db)
    with bind_tenant(ids["a"]):
        async with db.read() as s:
            names = [t.name for t in (await s.scalars(select(Team))).all()]
    assert names == ["team-of-a"]


async def test_bulk_update_and_delete_are_scoped(db: Database) -> None:
    ids = await tenant_ids(db)
    with bind_tenant(ids["a"]):
        async with db.transaction() as s:
            await s.execute(update(Team).values(description="changed"))
            await s.execute(delete(Team))
    with bind_tenant(ids["b"]):
        async with db.read() as s:
            team = (await s.scalars(select(Team))).one()
    assert team.description == ""


async def test_no_tenant_bound_fails_closed(db: Database) -> None:
    with pytest.raises(TenantScopeError):
        async with db.read() as s:
            await s.scalars(select(Team))


async def test_cannot_write_a_row_for_another_tenant(db: Database) -> None:
    ids = await tenant_ids(db)
    with bind_tenant(ids["a"]), pytest.raises(TenantScopeError):
        async with db.transaction() as s:
            s.add(Team(name="sneaky", tenant_id=ids["b"]))
    with bind_tenant(ids["a"]), pytest.raises(TenantScopeError):
        async with db.transaction() as s:
            team = (await s.scalars(select(Team))).one()
            team.tenant_id = ids["b"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_row_level_security_stops_a_faulty_raw_query(db: Database) -> None:
    """Plain SQL bypasses the ORM filter; PostgreSQL's policies still hold."""
    ids = await tenant_ids(db)
    with bind_tenant(ids["a"]):
        async with db.transaction() as s:
            rows = (await s.execute(text("SELECT name FROM teams"))).all()
            assert [r.name for r in rows] == ["team-of-a"]
            changed = await s.execute(text("UPDATE teams SET description = 'x'"))
            assert changed.rowcount == 1  # type: ignore[attr-defined]
            with pytest.raises(Exception, match="row-level security"):
                await s.execute(
                    text(
                        "INSERT INTO teams (id, tenant_id, name, description, created_at,"
                        " updated_at) VALUES ('t1', :b, 'x', '', now(), now())"
                    ),
                    {"b": ids["b"]},
                )
