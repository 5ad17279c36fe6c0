"""The change feed (musubi.storage.changes) on SQLite and PostgreSQL: which writes it
records, that it tells its subscribers once per change, and that a sequence number
committed out of order (PostgreSQL) is not skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.identity.models import ApiKey
from musubi.identity.service import create_key, create_user, revoke_key
from musubi.storage.changes import ChangeFeed
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, audit_signer=Signer.generate())
    await upgrade(database)
    yield database
    await database.dispose()


async def _feed(db: Database) -> tuple[ChangeFeed, list[str | None]]:
    feed = ChangeFeed(db, interval=60)
    told: list[str | None] = []
    feed.subscribe(told.append)
    await feed.poll()  # the starting point
    told.clear()
    return feed, told


async def _tenant_with_key(db: Database) -> tuple[str, str]:
    with system_scope():
        async with db.transaction() as s:
            tenant = await service.create_tenant(s, "acme")
    with bind_tenant(tenant.id):
        async with db.transaction() as s:
            user = await create_user(s, "dev")
            key, _ = await create_key(s, user.id, name="ci")
    return tenant.id, key.id


async def test_a_change_is_told_once_and_activity_is_not_a_change(db: Database) -> None:
    feed, told = await _feed(db)
    tenant, key_id = await _tenant_with_key(db)
    await feed.poll()
    assert set(told) == {tenant}
    told.clear()
    await feed.poll()
    assert told == []  # nothing new

    with system_scope():  # how the server records a key's last use
        async with db.transaction() as s:
            await s.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=ApiKey.created_at)
                .execution_options(cache_neutral=True)
            )
    await feed.poll()
    assert told == []

    with bind_tenant(tenant):
        async with db.transaction() as s:
            await revoke_key(s, key_id)
    await feed.poll()
    assert told == [tenant]


async def test_a_rolled_back_change_records_nothing(db: Database) -> None:
    tenant, key_id = await _tenant_with_key(db)
    feed, told = await _feed(db)

    class Boom(Exception):
        pass

    with bind_tenant(tenant), pytest.raises(Boom):
        async with db.transaction() as s:
            await revoke_key(s, key_id)
            await s.flush()
            raise Boom
    await feed.poll()
    assert told == []


async def test_a_bulk_statement_in_system_scope_tells_every_tenant(db: Database) -> None:
    await _tenant_with_key(db)
    feed, told = await _feed(db)
    with system_scope():
        async with db.transaction() as s:
            await s.execute(update(ApiKey).values(name="renamed"))
    await feed.poll()
    assert told == [None]


def test_a_missing_sequence_number_is_waited_for() -> None:
    feed = ChangeFeed(db=None)
    feed._floor = 10
    feed._seen = {11, 13}  # 12 is not committed yet
    feed._advance(now=100.0)
    assert feed._floor == 11  # 12 is read again on the next poll
    feed._seen.add(12)
    feed._advance(now=101.0)
    assert feed._floor == 13
    feed._seen = {15}  # 14 rolled back: given up after GAP_WAIT_S
    feed._advance(now=102.0)
    assert feed._floor == 13
    feed._advance(now=102.0 + 61)
    assert feed._floor == 15
