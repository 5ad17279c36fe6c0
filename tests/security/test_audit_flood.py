"""Issue 14, finding 10: an anonymous caller cannot write to a tenant's audit chain at will.

Wrong secrets sent with a tenant's real key prefixes used to append one event each to
that tenant's chain. Now the failures are counted per source and window: the chain gets
a bounded number of events, and their counts still add up to every failure.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from musubi.audit.models import AuditEvent
from musubi.context import SYSTEM_TENANT, system_scope
from tests.api.helpers import ok
from tests.conftest import Api

REQUESTS = 300


async def _failed(api: Api, tenant_id: str) -> list[AuditEvent]:
    with system_scope():
        async with api.state.db.read() as s:
            rows = await s.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant_id, AuditEvent.action == "auth.failed"
                )
            )
            return list(rows.all())


async def _flood(api: Api, prefixes: list[str], per_prefix: int) -> None:
    async with api.client() as anon:

        async def one(prefix: str) -> None:
            r = await anon.get(
                "/v1/me", headers={"Authorization": f"Bearer msk_{prefix}_{'x' * 43}"}
            )
            assert r.status_code == 401

        for _ in range(per_prefix):
            await asyncio.gather(*(one(p) for p in prefixes))


def _count(events: list[AuditEvent]) -> int:
    return sum(int(e.detail.get("count", 1)) for e in events)


async def test_wrong_secrets_for_one_key_are_one_counted_event(
    api: Api, owner: httpx.AsyncClient
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    prefix = api.owner_key.split("_")[1]
    await _flood(api, [prefix], REQUESTS)
    during = await _failed(api, tenant)
    assert len(during) == 1  # the first failure, recorded at once
    assert during[0].detail["reason"] == "wrong secret"
    await api.state.auth_failures.flush()  # the window closes (every minute in the server)
    after = await _failed(api, tenant)
    assert len(after) == 2
    assert after[1].detail["count"] == REQUESTS - 1
    assert _count(after) == REQUESTS  # every failure is accounted for


async def test_many_key_prefixes_do_not_multiply_the_events(
    api: Api, owner: httpx.AsyncClient
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    prefixes = []
    for i in range(25):  # the attacker has seen the prefixes of 25 of the tenant's keys
        created = ok(await owner.post("/v1/keys", json={"name": f"k{i}"}), 201)
        prefixes.append(created["token"].split("_")[1])
    await _flood(api, prefixes, 8)
    # At most MAX_SOURCES (10) sources per tenant and window, and one for the rest.
    assert len(await _failed(api, tenant)) <= 11
    await api.state.auth_failures.flush()
    events = await _failed(api, tenant)
    assert len(events) <= 2 * 11, len(events)
    assert _count(events) == 25 * 8
    assert any(e.detail["reason"].startswith("many sources") for e in events)


async def test_anonymous_oversized_bodies_do_not_flood_the_system_chain(api: Api) -> None:
    big = b"x" * (api.state.settings.max_body_bytes + 1)
    async with api.client() as anon:
        for _ in range(50):
            r = await anon.post("/v1/teams", content=big)
            assert r.status_code == 413
    events = await _refusals(api, "request.payload_too_large")
    assert len(events) == 1
    await api.state.auth_failures.flush()
    assert _count(await _refusals(api, "request.payload_too_large")) == 50


async def _refusals(api: Api, action: str) -> list[AuditEvent]:
    with system_scope():
        async with api.state.db.read() as s:
            rows = await s.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == SYSTEM_TENANT, AuditEvent.action == action
                )
            )
            return list(rows.all())
