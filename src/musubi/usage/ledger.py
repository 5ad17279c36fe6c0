"""A crash-safe, batched writer for usage records (and their audit events).

:meth:`UsageLedger.record` never touches the database: it appends one JSON line to this
process's spool file (an ``O_APPEND`` write, so it is in the OS the moment ``record``
returns and survives the process being killed). A background task writes the spooled
records in chunks, each chunk's usage rows plus one audit event per call in one
transaction, letting requests run between chunks (one transaction for a second's worth of
calls held the event loop for ~70 ms). When everything is written the spool is truncated.
The writer takes the records this process spooled from memory (after a failed write too:
they are still exactly the file's lines); the file is read back only for a spool left by
a dead process, or when too many records wait for a database that is down.
Rows carry their record's id and are inserted "on conflict do nothing", so replaying lines
after a crash adds nothing twice; a spool that may hold written lines (one left by a dead
process, whose ``flock`` is free, or one whose write failed) is replayed checking which
rows are new, so their audit events are not written twice either.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table

from musubi.audit.service import NewEvent
from musubi.audit.service import record_many as audit_record_many
from musubi.context import system_scope
from musubi.storage.base import new_id, utcnow
from musubi.storage.database import Database, insert_ignoring_conflicts
from musubi.usage.models import UsageRow

__all__ = ["UsageLedger", "UsageRecord"]

log = logging.getLogger("musubi.usage")
_USAGE = cast(Table, UsageRow.__table__)  # Core inserts: no per-row ORM work


@dataclass
class UsageRecord:
    tenant_id: str
    model: str
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    cost: float = 0.0
    latency_ms: float = 0.0
    outcome: str = "success"
    team_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    actor: str = "system"
    client_ip: str | None = None
    id: str = field(default_factory=lambda: new_id("use"))
    at: datetime = field(default_factory=utcnow)

    def to_line(self) -> bytes:
        data = dict(vars(self))  # flat fields: no need for asdict's deep copy (hot path)
        data["at"] = self.at.isoformat()
        return (json.dumps(data, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> UsageRecord:
        data = json.loads(line)
        data["at"] = datetime.fromisoformat(data["at"])
        return cls(**data)


class _Spool:
    """One append-only file and the offset up to which it is committed."""

    def __init__(self, path: Path, hold: int = 0) -> None:
        self.path = path
        self.hold = hold  # records kept in memory for the writer; beyond, it reads the file
        self.offset_path = path.with_suffix(".offset")
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails if a live owner holds it
        except BlockingIOError:
            os.close(self.fd)
            raise
        self.offset = int(self.offset_path.read_text()) if self.offset_path.exists() else 0
        if self.offset > os.fstat(self.fd).st_size:
            self.offset = 0  # an offset past the end can only be stale: replay it all
        # lines after the offset may already be in the database: a file this process did
        # not start, or whose last write failed (check what is new before auditing)
        self.maybe_written = os.fstat(self.fd).st_size > self.offset
        # the records after the offset with their line lengths, while they are exactly the
        # file's lines; None when the file must be read (see ``append``, ``checkpoint``)
        self.held: deque[tuple[UsageRecord, int]] | None = None if self.maybe_written else deque()

    def append(self, rec: UsageRecord) -> None:
        line = rec.to_line()
        os.write(self.fd, line)
        if self.held is not None:
            self.held.append((rec, len(line)))
            if len(self.held) > self.hold:
                self.held = None  # the database is not keeping up: leave them on disk

    def take(self, limit: int) -> tuple[list[UsageRecord], int]:
        """Up to ``limit`` records after the committed offset, and the offset after them;
        from memory when held, else parsed from the file."""
        if self.held is not None:
            records, end = [], self.offset
            for rec, size in itertools.islice(self.held, limit):
                records.append(rec)
                end += size
            return records, end
        lines, end = self.read_batch(limit)
        return [UsageRecord.from_line(x) for x in lines], end

    def advance(self, end: int, count: int) -> None:
        """The records up to ``end`` are written."""
        self.offset = end
        if self.held is not None:
            for _ in range(count):
                self.held.popleft()

    def read_batch(self, limit: int) -> tuple[list[bytes], int]:
        """Up to ``limit`` complete lines after the committed offset, and the end offset."""
        lines: list[bytes] = []
        end = self.offset
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            for line in fh:
                if not line.endswith(b"\n") or len(lines) >= limit:
                    break  # a line being written right now waits for the next batch
                lines.append(line)
                end += len(line)
        return lines, end

    def checkpoint(self) -> None:
        """Make the in-memory offset durable. Replays are harmless, so the order below only
        ever errs towards replaying."""
        if self.offset == os.fstat(self.fd).st_size:  # all written: start the file afresh
            if self.offset_path.exists():
                self.offset_path.unlink()  # first: a crash now replays, never skips
            os.ftruncate(self.fd, 0)
            self.offset = 0
            self.maybe_written = False
            self.held = deque()  # the file is empty: memory and file agree again
            return  # the steady state: no file written per drain
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        os.replace(tmp, self.offset_path)

    def close(self, remove: bool = False) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
            self.offset_path.unlink(missing_ok=True)
        os.close(self.fd)


class UsageLedger:
    def __init__(
        self,
        db: Database,
        spool_dir: Path,
        *,
        every_s: float = 1.0,
        batch: int = 1000,
        chunk: int = 200,
        audit: bool = True,
        hold: int = 20_000,
    ) -> None:
        self.db = db
        self.dir = spool_dir
        self.every_s = every_s
        self.batch = batch  # records spooled that wake the writer before every_s
        self.chunk = chunk  # records per transaction
        self.audit = audit
        self.hold = hold  # records kept in memory too, so the writer need not read them back
        self._spool: _Spool | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()  # flush() and the writer task must not interleave
        self._pending = 0

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        await self._replay_orphans()
        self._spool = _Spool(self.dir / f"usage-{uuid.uuid4().hex}.jsonl", self.hold)
        self._task = asyncio.create_task(self._run())

    def record(self, rec: UsageRecord) -> None:
        """Append a record; durable against a process kill once this returns."""
        if self._spool is None:
            raise RuntimeError("the usage ledger is not started")
        self._spool.append(rec)
        self._pending += 1
        if self._pending >= self.batch:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything spooled so far; returns how many records were read."""
        if self._spool is None:
            return 0
        return await self._drain(self._spool)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._spool is not None:
            await self._drain(self._spool)
            self._spool.close(remove=self._spool.offset == 0)
            self._spool = None

    async def _run(self) -> None:
        assert self._spool is not None
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # lands as it times out, and stop()/close() would then wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain(self._spool)
            except Exception:  # the database may be down: the spool keeps every record
                log.exception("usage ledger flush failed; will retry")
                await asyncio.sleep(min(5.0, self.every_s * 10))

    async def _drain(self, spool: _Spool) -> int:
        async with self._draining:
            return await self._drain_locked(spool)

    async def _drain_locked(self, spool: _Spool) -> int:
        total = 0
        try:
            while True:
                records, end = spool.take(self.chunk)
                if not records:
                    break
                await self._write(records, check_written=spool.maybe_written)
                spool.advance(end, len(records))
                total += len(records)
                self._pending = max(0, self._pending - len(records))
                await asyncio.sleep(0)  # let requests run between chunks
        except BaseException:
            spool.maybe_written = True  # its commit may have landed: check on the retry
            raise
        finally:
            spool.checkpoint()
        return total

    async def _write(self, records: list[UsageRecord], *, check_written: bool) -> None:
        rows = [_row(r) for r in records]
        with system_scope():
            async with self.db.transaction() as s:
                # executemany form: one cached statement, not a new multi-VALUES per batch
                statement = insert_ignoring_conflicts(s, _USAGE)
                if check_written:  # audit only the rows not written before a crash
                    result = await s.execute(statement.returning(_USAGE.c.id), rows)
                    fresh = set(result.scalars().all())
                    records = [r for r in records if r.id in fresh]
                else:
                    await s.execute(statement, rows)
                if self.audit:
                    await audit_record_many(s, [_audit_event(r) for r in records])

    async def _replay_orphans(self) -> None:
        for path in sorted(self.dir.glob("usage-*.jsonl")):
            try:
                spool = _Spool(path)
            except BlockingIOError:
                continue  # a live process owns it
            try:
                n = await self._drain(spool)
                log.info("replayed %d usage records left by a stopped process", n)
            finally:
                spool.close(remove=spool.offset == 0)


def _row(r: UsageRecord) -> dict[str, Any]:
    data = dict(vars(r))
    for k in ("actor", "client_ip"):
        data.pop(k)
    return data


def _audit_event(r: UsageRecord) -> NewEvent:
    """Metadata only: never prompt or completion text."""
    detail = {
        "usage_id": r.id,
        "provider": r.provider,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cached": r.cached,
        "cost": r.cost,
        "latency_ms": r.latency_ms,
        "outcome": r.outcome,
        "key_id": r.key_id,
        "project_id": r.project_id,
    }
    return NewEvent(
        tenant_id=r.tenant_id,
        action="model.call",
        target=r.model,
        actor=r.actor,
        outcome="success" if r.outcome == "success" else "failure",
        detail=detail,
        request_id=r.request_id,
        client_ip=r.client_ip,
    )
