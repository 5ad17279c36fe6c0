"""Quotas over the real database and both stores: reserve, refuse with Retry-After, reconcile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.errors import QuotaExceeded
from musubi.quotas import Quotas, QuotaScope
from musubi.quotas.policies import set_policy
from musubi.quotas.store import RateLimitStore
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service


@pytest.fixture
async def db(tmp_path: object) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/q.db", audit_signer=Signer.generate())
    await upgrade(database)
    yield database
    await database.dispose()


async def tenant_with(db: Database, **limits: float) -> str:
    with system_scope():
        async with db.transaction() as s:
            tenant = await service.create_tenant(s, "acme")
    with bind_tenant(tenant.id):
        async with db.transaction() as s:
            await set_policy(s, "tenant", "", limits)
    return tenant.id


async def test_token_budget_holds_under_500_concurrent_calls(
    db: Database, store: RateLimitStore
) -> None:
    tenant = await tenant_with(db, tokens_per_day=10_000)
    quotas = Quotas(db, store)
    scope = QuotaScope(tenant)

    async def call() -> int:
        try:
            r = await quotas.reserve(scope, tokens=300, cost=0.0)
        except QuotaExceeded:
            return 0
        await asyncio.sleep(0)
        await quotas.reconcile(r, tokens=250, cost=0.0)  # real usage is below the estimate
        return 250

    # The estimate (prompt + max_tokens) bounds the real usage, so the budget holds exactly.
    spent = await asyncio.gather(*(call() for _ in range(500)))
    assert sum(spent) <= 10_000
    assert sum(1 for x in spent if x) >= 10_000 // 300  # every reservation that fits got in
    # What the calls did not use is given back: later calls can spend it.
    left = 10_000 - sum(spent)
    await quotas.reserve(scope, tokens=left, cost=0.0)
    with pytest.raises(QuotaExceeded):
        await quotas.reserve(scope, tokens=1, cost=0.0)


async def test_refusal_says_which_limit_and_when(db: Database, store: RateLimitStore) -> None:
    tenant = await tenant_with(db, requests_per_minute=2, cost_per_month=1.0)
    quotas = Quotas(db, store)
    r = await quotas.reserve(QuotaScope(tenant), tokens=10, cost=0.1)
    assert r.headers["x-ratelimit-limit-requests"] == "2"
    assert r.headers["x-ratelimit-remaining-requests"] == "1"
    await quotas.reserve(QuotaScope(tenant), tokens=10, cost=0.1)
    with pytest.raises(QuotaExceeded) as exc:
        await quotas.reserve(QuotaScope(tenant), tokens=10, cost=0.1)
    assert "requests_per_minute" in exc.value.message
    assert 1 <= exc.value.retry_after <= 60
    assert exc.value.headers["retry-after"]


async def test_cost_budget_and_key_scope(db: Database, store: RateLimitStore) -> None:
    tenant = await tenant_with(db, cost_per_day=1.0)
    quotas = Quotas(db, store)
    r = await quotas.reserve(QuotaScope(tenant, key_id="key_x"), tokens=1, cost=0.9)
    await quotas.reconcile(r, tokens=1, cost=0.5)
    await quotas.reserve(QuotaScope(tenant), tokens=1, cost=0.5)  # exactly at the limit
    with pytest.raises(QuotaExceeded, match=r"cost_per_day is \$1.00"):
        await quotas.reserve(QuotaScope(tenant), tokens=1, cost=0.01)


async def test_other_tenants_are_not_limited(db: Database, store: RateLimitStore) -> None:
    limited = await tenant_with(db, requests_per_minute=1)
    with system_scope():
        async with db.transaction() as s:
            free = (await service.create_tenant(s, "free")).id
    quotas = Quotas(db, store)
    await quotas.reserve(QuotaScope(limited), tokens=1, cost=0)
    with pytest.raises(QuotaExceeded):
        await quotas.reserve(QuotaScope(limited), tokens=1, cost=0)
    for _ in range(5):
        await quotas.reserve(QuotaScope(free), tokens=1, cost=0)


async def test_policies_are_read_once_for_calls_arriving_together(db: Database) -> None:
    """When the cached policies expire under load, the calls in flight share one query
    (they used to run one each, and stall the event loop all at once)."""
    from sqlalchemy import event

    from musubi.quotas.store import MemoryStore

    tenant = await tenant_with(db, requests_per_minute=1000)
    quotas = Quotas(db, MemoryStore())
    reads: list[str] = []

    def count(_conn: object, _cur: object, statement: str, *_: object) -> None:
        if "quota_policies" in statement:
            reads.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await asyncio.gather(
            *(quotas.reserve(QuotaScope(tenant), tokens=1, cost=0) for _ in range(50))
        )
        assert len(reads) == 1
        quotas.invalidate(tenant)  # a changed policy is read again at once
        await asyncio.gather(
            *(quotas.reserve(QuotaScope(tenant), tokens=1, cost=0) for _ in range(50))
        )
        assert len(reads) == 2
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
