"""The usage ledger keeps every record across a kill -9, and never writes one twice."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from musubi.audit import service as audit
from musubi.audit.models import AuditEvent
from musubi.audit.signing import Signer
from musubi.context import system_scope
from musubi.errors import AuditIntegrityError
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.usage import UsageLedger, UsageRecord
from musubi.usage.models import UsageRow


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, audit_signer=Signer.generate())
    await upgrade(database)
    yield database
    await database.dispose()


async def count(db: Database, model: type[object]) -> int:
    with system_scope():
        async with db.read() as s:
            return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def model_calls(db: Database) -> int:
    with system_scope():
        async with db.read() as s:
            n = await s.scalar(select(func.count()).where(AuditEvent.action == "model.call"))
    return int(n or 0)


def rec(i: int, tenant: str = "ten_a") -> UsageRecord:
    return UsageRecord(
        tenant_id=tenant,
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=10 + i,
        output_tokens=5,
        cost=0.001,
        latency_ms=12.5,
        key_id="key_1",
        actor="key:msk_1",
    )


async def test_records_land_with_their_audit_events(db: Database, tmp_path: Path) -> None:
    ledger = UsageLedger(db, tmp_path / "spool", every_s=60)
    await ledger.start()
    for i in range(25):
        ledger.record(rec(i))
    assert await count(db, UsageRow) == 0  # nothing synchronous on the database
    assert await ledger.flush() == 25
    await ledger.stop()
    assert await count(db, UsageRow) == 25
    with system_scope():
        async with db.read() as s:
            events = (
                await s.scalars(select(AuditEvent).where(AuditEvent.action == "model.call"))
            ).all()
            report = await audit.verify(s, "ten_a")
    assert len(events) == 25 and report.ok
    assert events[0].detail["input_tokens"] >= 10 and "prompt" not in events[0].detail
    assert events[0].actor == "key:msk_1"


async def test_kill_9_loses_nothing(db: Database, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from musubi.storage.database import Database
        from musubi.usage import UsageLedger, UsageRecord

        async def main():
            ledger = UsageLedger(Database({db.url!r}), __import__("pathlib").Path({str(spool)!r}),
                                 every_s=3600, batch=10**9)
            await ledger.start()
            for i in range(300):
                ledger.record(UsageRecord(tenant_id="ten_k", model="m", provider="p",
                                          input_tokens=i))
            os.kill(os.getpid(), signal.SIGKILL)  # before any flush

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -9, stderr.decode()
    assert await count(db, UsageRow) == 0
    ledger = UsageLedger(db, spool)
    await ledger.start()  # replays the dead process's spool
    await ledger.stop()
    assert await count(db, UsageRow) == 300
    assert list(spool.glob("usage-*.jsonl")) == []


async def test_replaying_a_written_batch_adds_nothing(db: Database, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    records = [rec(i) for i in range(5)]
    ledger = UsageLedger(db, spool, every_s=60)
    await ledger.start()
    for r in records:
        ledger.record(r)
    await ledger.flush()
    await ledger.stop()
    # A crash between the commit and the offset update leaves the lines to be read again.
    (spool / "usage-crashed.jsonl").write_bytes(b"".join(r.to_line() for r in records))
    ledger = UsageLedger(db, spool)
    await ledger.start()
    await ledger.stop()
    assert await count(db, UsageRow) == 5
    assert await model_calls(db) == 5


async def test_a_large_flush_lets_requests_run_between_chunks(db: Database, tmp_path: Path) -> None:
    """A second's worth of calls is written a chunk per transaction, and the event loop
    serves requests in between (one long transaction held every request up)."""
    ledger = UsageLedger(db, tmp_path / "spool", every_s=60, batch=10**9, chunk=100)
    await ledger.start()
    for i in range(1000):
        ledger.record(rec(i))
    ticks = 0
    flushing = True

    async def request_loop() -> None:
        nonlocal ticks
        while flushing:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.ensure_future(request_loop())
    await asyncio.sleep(0)
    assert await ledger.flush() == 1000
    flushing = False
    await other
    await ledger.stop()
    assert ticks >= 10  # at least once per chunk
    assert await count(db, UsageRow) == 1000
    assert await model_calls(db) == 1000
    assert list((tmp_path / "spool").glob("usage-*.jsonl")) == []  # drained and removed


async def test_a_failed_write_loses_nothing_and_the_retry_writes_each_record_once(
    db: Database, tmp_path: Path
) -> None:
    ledger = UsageLedger(db, tmp_path / "spool", every_s=60, batch=10**9, chunk=10)
    await ledger.start()
    for i in range(25):
        ledger.record(rec(i))
    async with db.engine.begin() as conn:  # the database refuses the write
        await conn.exec_driver_sql("ALTER TABLE usage_records RENAME TO usage_away")
    with pytest.raises(Exception, match="usage_records"):
        await ledger.flush()
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE usage_away RENAME TO usage_records")
    for i in range(25, 30):
        ledger.record(rec(i))  # spooled while the database was away
    assert await ledger.flush() == 30
    await ledger.stop()
    assert await count(db, UsageRow) == 30
    assert await model_calls(db) == 30
    with system_scope():
        async with db.read() as s:
            assert (await audit.verify(s, "ten_a")).ok


async def test_more_records_than_it_holds_in_memory_are_read_back_from_the_spool(
    db: Database, tmp_path: Path
) -> None:
    ledger = UsageLedger(db, tmp_path / "spool", every_s=60, batch=10**9, chunk=7, hold=10)
    await ledger.start()
    for i in range(25):
        ledger.record(rec(i))
    assert await ledger.flush() == 25
    for i in range(25, 30):
        ledger.record(rec(i))  # held again once the spool was drained
    assert await ledger.flush() == 5
    await ledger.stop()
    with system_scope():
        async with db.read() as s:
            tokens = sorted((await s.scalars(select(UsageRow.input_tokens))).all())
    assert tokens == [10 + i for i in range(30)]
    assert await model_calls(db) == 30


async def test_a_flush_of_many_tenants_extends_each_chain_and_checks_each_head(
    db: Database, tmp_path: Path
) -> None:
    """The heads of all the tenants in a flush are locked and checked together (issue 24):
    every chain stays whole, and an event edited at one tenant's head stops the flush."""
    tenants = [f"ten_{i:03d}" for i in range(30)]
    ledger = UsageLedger(db, tmp_path / "spool", every_s=60)
    await ledger.start()
    for round_ in range(3):  # the first flush begins the chains, the next ones extend them
        for i, tenant in enumerate(tenants):
            ledger.record(rec(round_ * 100 + i, tenant))
        assert await ledger.flush() == len(tenants)
    with system_scope():
        async with db.read() as s:
            reports = [await audit.verify(s, t) for t in tenants]
    assert all(r.ok for r in reports)
    assert await model_calls(db) == 90

    with system_scope():  # someone edits the event at tenant 7's head
        async with db.transaction() as s:
            event = await s.scalar(
                select(AuditEvent)
                .where(AuditEvent.tenant_id == "ten_007")
                .order_by(AuditEvent.seq.desc())
                .limit(1)
            )
            assert event is not None
            event.detail = {**event.detail, "cost": 0}
    for i, tenant in enumerate(tenants):
        ledger.record(rec(300 + i, tenant))
    with pytest.raises(AuditIntegrityError, match="ten_007"):
        await ledger.flush()
    assert await model_calls(db) == 90  # nothing of the refused flush was written
    with pytest.raises(AuditIntegrityError):  # kept in the spool, refused again
        await ledger.stop()
