"""Tampering with the stored log is found, and the first broken event is named."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from musubi.audit import retention
from musubi.audit import service as audit
from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.storage.base import utcnow
from musubi.storage.database import Database

TENANT = "ten_audit"


async def append(db: Database, n: int, tenant: str = TENANT) -> None:
    with bind_tenant(tenant):
        async with db.transaction() as s:
            for i in range(n):
                await audit.record(s, "thing.change", f"t{i}", detail={"i": i})


async def check(db: Database, tenant: str = TENANT) -> audit.VerifyReport:
    with system_scope():
        async with db.read() as s:
            return await audit.verify(s, tenant)


async def raw(db: Database, sql: str, **params: object) -> None:
    """Tamper as an attacker with database access would: plain SQL, no MUSUBI code."""
    with system_scope():
        async with db.transaction() as s:
            await s.execute(text(sql), params)


async def test_untouched_chain_verifies(db: Database) -> None:
    await append(db, 20)
    report = await check(db)
    assert report.ok and report.checked == 20 and report.last_seq == 20


async def test_edit_is_found(db: Database) -> None:
    await append(db, 10)
    await raw(
        db, "UPDATE audit_events SET target = 'other' WHERE tenant_id = :t AND seq = 4", t=TENANT
    )
    report = await check(db)
    assert report.broken is not None
    assert report.broken.seq == 4
    assert "edited" in report.broken.reason


async def test_edit_with_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    await append(db, 10)
    await raw(
        db,
        "UPDATE audit_events SET hash = :h WHERE tenant_id = :t AND seq = 6",
        h="f" * 64,
        t=TENANT,
    )
    report = await check(db)
    assert report.broken is not None and report.broken.seq == 6


async def test_deletion_is_found(db: Database) -> None:
    await append(db, 10)
    await raw(db, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 5", t=TENANT)
    report = await check(db)
    assert report.broken is not None
    assert report.broken.seq == 6  # the first event that no longer links
    assert "event 5 was deleted" in report.broken.reason


async def test_deleting_the_newest_events_is_found(db: Database) -> None:
    await append(db, 10)
    await raw(db, "DELETE FROM audit_events WHERE tenant_id = :t AND seq >= 9", t=TENANT)
    report = await check(db)
    assert report.broken is not None and report.broken.seq == 9
    assert "signed head is at seq 10" in report.broken.reason


async def test_reordering_is_found(db: Database) -> None:
    await append(db, 10)
    # Swap the positions of events 3 and 4.
    await raw(db, "UPDATE audit_events SET seq = -1 WHERE tenant_id = :t AND seq = 3", t=TENANT)
    await raw(db, "UPDATE audit_events SET seq = 3 WHERE tenant_id = :t AND seq = 4", t=TENANT)
    await raw(db, "UPDATE audit_events SET seq = 4 WHERE tenant_id = :t AND seq = -1", t=TENANT)
    report = await check(db)
    assert report.broken is not None and report.broken.seq == 3


async def test_insertion_is_found(db: Database) -> None:
    await append(db, 10)
    # Make room after event 6 and insert a copy of event 2 there.
    for seq in range(10, 6, -1):
        await raw(
            db,
            "UPDATE audit_events SET seq = :n WHERE tenant_id = :t AND seq = :o",
            n=seq + 1,
            o=seq,
            t=TENANT,
        )
    await raw(
        db,
        "INSERT INTO audit_events (tenant_id, seq, at, actor, action, target, outcome, detail,"
        " prev_hash, hash) SELECT tenant_id, 7, at, actor, action, target, outcome, detail,"
        " prev_hash, hash FROM audit_events WHERE tenant_id = :t AND seq = 2",
        t=TENANT,
    )
    report = await check(db)
    assert report.broken is not None and report.broken.seq == 7


async def test_forged_head_is_found(db: Database) -> None:
    await append(db, 5)
    await raw(db, "UPDATE audit_heads SET seq = 4 WHERE tenant_id = :t", t=TENANT)
    await raw(db, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 5", t=TENANT)
    report = await check(db)
    assert report.broken is not None and "signature" in report.broken.reason


async def test_another_signing_key_does_not_verify(db: Database, database_url: str) -> None:
    await append(db, 3)
    other = Database(database_url, audit_signer=Signer.generate())
    try:
        with system_scope():
            async with other.read() as s:
                report = await audit.verify(s, TENANT)
    finally:
        await other.dispose()
    assert report.broken is not None and "signature" in report.broken.reason


async def test_retention_purge_keeps_the_rest_verifiable(db: Database) -> None:
    await append(db, 10)
    old = utcnow() - timedelta(days=400)
    await raw(
        db,
        "UPDATE audit_events SET at = :at WHERE tenant_id = :t AND seq <= 6",
        at=old.replace(tzinfo=None) if db.is_sqlite else old,
        t=TENANT,
    )
    # Moving timestamps is itself an edit: re-seal the chain as if they had been written then.
    await _reseal(db)
    with bind_tenant(TENANT):
        async with db.transaction() as s:
            done = await retention.purge(s, TENANT, 365)
    assert done.removed == 6 and done.retention_days == 365
    report = await check(db)
    assert report.ok, report.broken
    assert report.first_seq == 7 and report.checked == 4
    # Deleting the first remaining event after the anchor is still caught.
    await raw(db, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 7", t=TENANT)
    report = await check(db)
    assert report.broken is not None and report.broken.seq == 8


async def _reseal(db: Database) -> None:
    """Recompute hashes and the head, using MUSUBI's own rules (test setup only)."""
    from sqlalchemy import select

    from musubi.audit.chain import GENESIS, event_hash, head_message
    from musubi.audit.models import AuditEvent, AuditHead

    with bind_tenant(TENANT):
        async with db.transaction() as s:
            prev = GENESIS
            events = (await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
            for e in events:
                e.prev_hash = prev
                e.hash = event_hash(
                    prev_hash=prev,
                    tenant_id=e.tenant_id,
                    seq=e.seq,
                    at=e.at,
                    actor=e.actor,
                    action=e.action,
                    target=e.target,
                    outcome=e.outcome,
                    request_id=e.request_id,
                    client_ip=e.client_ip,
                    detail=e.detail,
                )
                prev = e.hash
            head = await s.get(AuditHead, TENANT)
            assert head is not None
            head.hash = prev
            head.signature = audit.signer_of(s).sign(head_message(TENANT, head.seq, prev))


async def test_chains_are_per_tenant(db: Database) -> None:
    await append(db, 3, "ten_a")
    await append(db, 2, "ten_b")
    await raw(db, "UPDATE audit_events SET action = 'x' WHERE tenant_id = 'ten_b' AND seq = 1")
    assert (await check(db, "ten_a")).ok
    assert not (await check(db, "ten_b")).ok


@pytest.mark.parametrize("n", [1, 50])
async def test_concurrent_appends_keep_one_chain(db: Database, n: int) -> None:
    import asyncio

    await asyncio.gather(*(append(db, n) for _ in range(8)))
    report = await check(db)
    assert report.ok and report.checked == 8 * n
