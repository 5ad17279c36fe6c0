"""Issue 14, finding 11: retention is not a way to purge the audit log.

An admin (who lacks ``audit:purge``) set ``audit_retention_days=1``, and the server's own
retention then removed back-dated events. Now changing retention needs ``audit:purge``,
has a floor, never removes what the policy in force when an event was written still
keeps, and never removes events that do not verify.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from musubi.audit.chain import head_message
from musubi.audit.models import AuditEvent, AuditHead
from musubi.audit.retention import purge_all
from musubi.audit.service import signer_of
from musubi.context import system_scope
from musubi.errors import AuditIntegrityError
from musubi.settings import Settings
from musubi.storage.base import utcnow
from tests.api.helpers import ok, user_with_role
from tests.conftest import Api
from tests.security.audit_attacker import musubi, rehash_from, sql


async def _events(api: Api, tenant_id: str) -> int:
    with system_scope():
        async with api.state.db.read() as s:
            query = select(func.count()).where(AuditEvent.tenant_id == tenant_id)
            n = await s.scalar(query)
    return int(n or 0)


async def _back_date(api: Api, tenant_id: str, days: int, upto_seq: int) -> None:
    """Move events 1..upto_seq ``days`` into the past (as the database writer would)."""
    await sql(
        api.state.db,
        "UPDATE audit_events SET at = :at WHERE tenant_id = :t AND seq <= :s",
        at=_days_ago(days, api),
        t=tenant_id,
        s=upto_seq,
    )


async def test_an_admin_cannot_lower_retention(api: Api, owner: httpx.AsyncClient) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    _, admin = await user_with_role(owner, "ops", "admin")
    async with api.client(admin) as client:
        r = await client.patch(f"/v1/tenants/{tenant}", json={"audit_retention_days": 1})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["permission"] == "audit:purge"
        # Other changes need no more than before.
        ok(await client.patch(f"/v1/tenants/{tenant}", json={"name": "renamed"}))
    assert ok(await owner.get(f"/v1/tenants/{tenant}"))["audit_retention_days"] == 365


async def test_retention_has_a_floor(api: Api, owner: httpx.AsyncClient) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    # The floor (MUSUBI_AUDIT_RETENTION_MIN_DAYS) is 30 days unless the operator says so.
    r = await owner.patch(f"/v1/tenants/{tenant}", json={"audit_retention_days": 1})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "audit_retention_days"
    r = await owner.post("/v1/tenants", json={"name": "t2", "audit_retention_days": 1})
    assert r.status_code == 422


async def test_back_dated_events_are_not_purged_unseen(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    for name in ("a", "b", "c"):
        ok(await owner.post("/v1/teams", json={"name": name}), 201)
    before = await _events(api, tenant)
    # The database writer back-dates every event but the newest, hoping retention
    # removes them and signs an anchor over the edit.
    await _back_date(api, tenant, 400, upto_seq=before - 1)
    r = await owner.post("/v1/audit/purge")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["type"] == "audit_integrity"
    with pytest.raises(AuditIntegrityError, match="refusing to purge"):
        await purge_all(api.state.db)  # the server's daily task
    assert await _events(api, tenant) == before
    verify = await musubi(settings, "audit", "verify")
    assert verify.returncode == 1 and "edited" in verify.stderr


async def test_one_back_dated_event_does_not_pull_the_older_ones_along(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    for name in ("a", "b", "c", "d"):
        ok(await owner.post("/v1/teams", json={"name": name}), 201)
    before = await _events(api, tenant)
    # One event in the middle is moved back: everything up to it used to be removed,
    # under a signed anchor, and the edit with it.
    await sql(
        api.state.db,
        "UPDATE audit_events SET at = :at WHERE tenant_id = :t AND seq = :s",
        at=_days_ago(400, api),
        t=tenant,
        s=before - 2,
    )
    assert ok(await owner.post("/v1/audit/purge"))["removed"] == 0
    assert await _events(api, tenant) == before + 1  # and the audit.purge event
    verify = await musubi(settings, "audit", "verify")
    assert verify.returncode == 1 and "edited" in verify.stderr


def _days_ago(days: int, api: Api) -> object:
    at = utcnow() - timedelta(days=days)
    return at.replace(tzinfo=None) if api.state.db.is_sqlite else at


async def test_a_lowered_retention_keeps_what_the_old_one_promised(
    api: Api, owner: httpx.AsyncClient
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    ok(await owner.post("/v1/teams", json={"name": "old"}), 201)
    # Time passes (test set-up with the server's key: these events really are 100 days old).
    aged = await _events(api, tenant)
    await _back_date(api, tenant, 100, upto_seq=aged)
    await _reseal(api, tenant)
    # The owner (who holds audit:purge) lowers retention from 365 to 30 days today.
    ok(await owner.patch(f"/v1/tenants/{tenant}", json={"audit_retention_days": 30}))
    done = ok(await owner.post("/v1/audit/purge"))
    # The 100-day-old events were written under a 365-day promise: they stay.
    assert done == {"removed": 0, "retention_days": 365}
    assert await _events(api, tenant) > aged


async def _reseal(api: Api, tenant_id: str) -> None:
    """Re-hash and re-sign with the server's own key: test set-up for the passing of time."""
    last = await rehash_from(api.state.db, tenant_id, 1)
    with system_scope():
        async with api.state.db.transaction() as s:
            head = await s.get(AuditHead, tenant_id)
            assert head is not None
            head.signature = signer_of(s).sign(head_message(tenant_id, head.seq, last))
