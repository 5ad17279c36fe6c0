"""Heads signed in batches (issue 24): a flush of the calls of many tenants signs once.

The usage ledger's flush moves the head of every tenant whose calls it writes. They are
signed with one Ed25519 signature over the root of a Merkle tree of the heads, each head
keeping its inclusion proof (``musubi.audit.chain``). These tests pin that the cost of a
flush does not grow with its tenants in signatures or statements, and that a batch head is
as hard to forge, swap or roll back as a head signed alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from musubi.audit import service as audit
from musubi.audit.chain import head_leaf, heads_tree, root_of
from musubi.audit.models import AuditHead
from musubi.audit.signing import Signer
from musubi.context import system_scope
from musubi.errors import AuditIntegrityError
from musubi.storage.database import Database
from musubi.usage import UsageLedger, UsageRecord


def rec(i: int, tenant: str) -> UsageRecord:
    return UsageRecord(
        tenant_id=tenant,
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=i,
        output_tokens=5,
        key_id="key_1",
        actor="key:msk_1",
    )


async def heads(db: Database) -> dict[str, AuditHead]:
    with system_scope():
        async with db.read() as s:
            return {h.tenant_id: h for h in (await s.scalars(select(AuditHead))).all()}


async def verify_all(db: Database) -> list[audit.VerifyReport]:
    """Each chain (these tests write chains of made-up tenants, without a registry)."""
    with system_scope():
        async with audit.snapshot(db) as s:
            chains = sorted((await s.scalars(select(AuditHead.tenant_id))).all())
            return [await audit.verify(s, t) for t in chains]


async def sql(db: Database, statement: str, **params: Any) -> None:
    with system_scope():
        async with db.transaction() as s:
            await s.execute(text(statement), params)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` sends meanwhile (an executemany counts once)."""
    sent: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    engines = {db.engine.sync_engine, db.owner_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def test_every_proof_leads_its_head_and_only_it_to_the_root() -> None:
    for n in range(2, 18):
        leaves = [
            head_leaf(f"ten_{i}", i + 1, hashlib.sha256(bytes([i])).hexdigest()) for i in range(n)
        ]
        root, proofs = heads_tree(leaves)
        assert len(set(proofs)) == n
        for i, (leaf, proof) in enumerate(zip(leaves, proofs, strict=True)):
            assert root_of(leaf, proof) == root
            other = leaves[(i + 1) % n]
            assert root_of(other, proof) != root  # another head with this one's proof
            moved = head_leaf(f"ten_{i}", i + 2, hashlib.sha256(bytes([i])).hexdigest())
            assert root_of(moved, proof) != root  # this head at another seq
            assert root_of(leaf, proof[:-65]) != root  # a step left out
            assert root_of(leaf, proof[:-1]) is None  # malformed
            assert root_of(leaf, "X" + proof[1:]) is None
            assert root_of(leaf, proof[:1] + "zz" + proof[3:]) is None
    assert root_of(leaves[0], "") is None  # a head alone has no proof: signed itself


async def test_a_flush_of_many_tenants_signs_once_in_as_many_statements_as_for_two(
    db: Database, tmp_path: Path
) -> None:
    ledger = UsageLedger(db, tmp_path / "spool", every_s=3600, batch=10**9)
    await ledger.start()
    try:
        sent: dict[int, int] = {}
        for n in (2, 40):
            tenants = [f"ten_{n}_{i:03d}" for i in range(n)]
            for i, tenant in enumerate(tenants):  # the first flush begins the chains
                ledger.record(rec(i, tenant))
            await ledger.flush()
            for i, tenant in enumerate(tenants):
                ledger.record(rec(100 + i, tenant))
            with statements(db) as seen:
                assert await ledger.flush() == n
            sent[n] = len(seen)
            found = [h for t, h in (await heads(db)).items() if t in tenants]
            assert {h.seq for h in found} == {2}
            assert len({h.signature for h in found}) == 1  # one signature for all of them
            assert all(h.proof for h in found)
            assert len({h.proof for h in found}) == n
    finally:
        await ledger.stop()
    assert sent[40] == sent[2]  # the same statements for 40 tenants as for 2
    assert all(r.ok for r in await verify_all(db))

    with system_scope():  # a later event of one tenant alone: signed alone, still whole
        async with db.transaction() as s:
            await audit.record(s, "key.create", "key_2", tenant_id="ten_40_007")
    head = (await heads(db))["ten_40_007"]
    assert (head.seq, head.proof) == (3, "")
    assert all(r.ok for r in await verify_all(db))


async def _two_flushes(db: Database, ledger: UsageLedger, tenants: list[str]) -> None:
    for round_ in range(2):
        for i, tenant in enumerate(tenants):
            ledger.record(rec(round_ * 100 + i, tenant))
        await ledger.flush()


@pytest.mark.parametrize("forgery", ["another head's proof", "moved head", "no proof"])
async def test_a_forged_batch_head_fails_verify_and_is_not_extended(
    db: Database, tmp_path: Path, forgery: str
) -> None:
    tenants = [f"ten_{i}" for i in range(6)]
    ledger = UsageLedger(db, tmp_path / "spool", every_s=3600, batch=10**9)
    await ledger.start()
    await _two_flushes(db, ledger, tenants)
    found = await heads(db)
    if forgery == "another head's proof":
        await sql(
            db,
            "UPDATE audit_heads SET proof = :p WHERE tenant_id = 'ten_2'",
            p=found["ten_3"].proof,
        )
    elif forgery == "moved head":  # its last event deleted, the head moved back onto it
        await sql(db, "DELETE FROM audit_events WHERE tenant_id = 'ten_2' AND seq = 2")
        first = "SELECT hash FROM audit_events WHERE tenant_id = 'ten_2' AND seq = 1"
        await sql(db, f"UPDATE audit_heads SET seq = 1, hash = ({first}) WHERE tenant_id = 'ten_2'")
    else:  # the batch signature passed off as a signature of this head alone
        await sql(db, "UPDATE audit_heads SET proof = '' WHERE tenant_id = 'ten_2'")
    reports = {r.tenant_id: r for r in await verify_all(db)}
    assert reports["ten_2"].broken is not None
    assert reports["ten_2"].broken.reason == "chain head signature is invalid"
    assert all(r.ok for t, r in reports.items() if t != "ten_2")
    for i, tenant in enumerate(tenants):
        ledger.record(rec(300 + i, tenant))
    with pytest.raises(AuditIntegrityError, match="ten_2"):
        await ledger.flush()
    with pytest.raises(AuditIntegrityError):
        await ledger.stop()


async def test_a_batch_head_rolled_back_is_refused_by_the_server_that_signed_later(
    db: Database, tmp_path: Path
) -> None:
    """An older head of a batch is validly signed, as an older head signed alone is: the
    server that signed a later one refuses it (checkpoints catch it offline)."""
    tenants = [f"ten_{i}" for i in range(4)]
    ledger = UsageLedger(db, tmp_path / "spool", every_s=3600, batch=10**9)
    await ledger.start()
    for i, tenant in enumerate(tenants):
        ledger.record(rec(i, tenant))
    await ledger.flush()
    old = (await heads(db))["ten_1"]
    await _two_flushes(db, ledger, tenants)
    await sql(db, "DELETE FROM audit_events WHERE tenant_id = 'ten_1' AND seq > 1")
    await sql(
        db,
        "UPDATE audit_heads SET seq = :s, hash = :h, signature = :g, proof = :p "
        "WHERE tenant_id = 'ten_1'",
        s=old.seq,
        h=old.hash,
        g=old.signature,
        p=old.proof,
    )
    assert all(r.ok for r in await verify_all(db))  # offline, only a checkpoint tells
    for i, tenant in enumerate(tenants):
        ledger.record(rec(300 + i, tenant))
    with pytest.raises(AuditIntegrityError, match="rolled back"):
        await ledger.flush()
    with pytest.raises(AuditIntegrityError):
        await ledger.stop()


@pytest.mark.parametrize(
    "edit", ["actor = 'key:msk_other'", "target = 'gpt-4o'", "outcome = 'failure'"]
)
async def test_an_edited_event_at_a_head_this_server_signed_is_refused(
    db: Database, tmp_path: Path, edit: str
) -> None:
    """The server remembers the event it hashed into each head it signed and checks the
    one it finds against it (no hashing again): any field changed is still refused."""
    tenants = [f"ten_{i}" for i in range(5)]
    ledger = UsageLedger(db, tmp_path / "spool", every_s=3600, batch=10**9)
    await ledger.start()
    await _two_flushes(db, ledger, tenants)
    await sql(db, f"UPDATE audit_events SET {edit} WHERE tenant_id = 'ten_3' AND seq = 2")
    for i, tenant in enumerate(tenants):
        ledger.record(rec(300 + i, tenant))
    with pytest.raises(AuditIntegrityError, match=r"ten_3.*missing or was changed"):
        await ledger.flush()
    with pytest.raises(AuditIntegrityError):
        await ledger.stop()


class _CountingKey:
    """The public key of a signer, counting the Ed25519 verifications it makes."""

    def __init__(self, key: Any) -> None:
        self.key, self.calls = key, 0

    def verify(self, signature: bytes, data: bytes) -> None:
        self.calls += 1
        self.key.verify(signature, data)


async def test_another_server_checks_a_batch_of_heads_with_one_verification(
    db: Database, database_url: str, signer: Signer, tmp_path: Path
) -> None:
    """Replicas take turns writing a tenant's calls: the heads a replica finds were signed by
    another, so it verifies them before extending them; one batch, one verification."""
    tenants = [f"ten_{i:02d}" for i in range(30)]
    ledger = UsageLedger(db, tmp_path / "a", every_s=3600, batch=10**9)
    await ledger.start()
    await _two_flushes(db, ledger, tenants)
    await ledger.stop()
    assert len({h.signature for h in (await heads(db)).values()}) == 1

    other = Signer(signer._key)  # the same key in another process
    counting = _CountingKey(other.public_key)
    other.public_key = counting  # type: ignore[assignment]
    replica = Database(database_url, audit_signer=other)
    try:
        ledger = UsageLedger(replica, tmp_path / "b", every_s=3600, batch=10**9)
        await ledger.start()
        for i, tenant in enumerate(tenants):
            ledger.record(rec(500 + i, tenant))
        assert await ledger.flush() == len(tenants)
        await ledger.stop()
    finally:
        await replica.dispose()
    assert counting.calls == 1  # 30 heads found, signed by the other server: one check
    assert {h.seq for h in (await heads(db)).values()} == {3}
    assert all(r.ok for r in await verify_all(db))
