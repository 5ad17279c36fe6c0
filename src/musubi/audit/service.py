"""Append, query, verify and purge the audit log.

:func:`record` adds the event to the caller's session, so it commits or rolls back with
the change it describes. Appends of one tenant are ordered by locking that tenant's
:class:`AuditHead` row, which also carries the Ed25519 signature over the newest event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from musubi.audit.chain import GENESIS, anchor_message, event_hash, head_message
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.audit.signing import Signer
from musubi.errors import TenantScopeError
from musubi.storage.base import utcnow
from musubi.storage.database import Database, insert_ignoring_conflicts
from musubi.storage.scoping import TenantSession
from musubi.tenancy.context import current_actor, current_tenant_id

__all__ = [
    "Break",
    "EventFilter",
    "NewEvent",
    "VerifyReport",
    "event_dict",
    "list_events",
    "purge",
    "record",
    "record_many",
    "signer_of",
    "snapshot",
    "stream_events",
    "verify",
]


def signer_of(session: AsyncSession) -> Signer:
    signer = session.info.get("audit_signer")
    if not isinstance(signer, Signer):
        raise RuntimeError("this session has no audit signer; open it through Database")
    return signer


async def record(
    session: AsyncSession,
    action: str,
    target: str = "",
    *,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> AuditEvent:
    """Append an event to the bound tenant's chain (or ``tenant_id``'s) in this session."""
    tenant_id = tenant_id or current_tenant_id()
    if tenant_id is None:
        raise TenantScopeError("audit event with no tenant")
    head = await _head_for(session, tenant_id)
    actor = current_actor()
    event = AuditEvent(
        **_chain(
            head,
            tenant_id,
            actor.name,
            action,
            target,
            outcome,
            detail,
            actor.request_id,
            actor.client_ip,
        )
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class NewEvent:
    """One event for :func:`record_many`: who did it is given, not taken from the context."""

    tenant_id: str
    action: str
    target: str
    actor: str
    outcome: str = "success"
    detail: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    client_ip: str | None = None


async def record_many(session: AsyncSession, events: list[NewEvent]) -> None:
    """Append many events (of any tenants) in one bulk INSERT: the usage ledger's path,
    where an ORM object per event cost more than the model call it records."""
    rows = []
    for e in events:
        head = await _head_for(session, e.tenant_id)
        rows.append(
            _chain(
                head,
                e.tenant_id,
                e.actor,
                e.action,
                e.target,
                e.outcome,
                e.detail,
                e.request_id,
                e.client_ip,
            )
        )
    if rows:
        await session.execute(insert(_EVENTS), rows)


async def _head_for(session: AsyncSession, tenant_id: str) -> AuditHead:
    """The tenant's head, locked once per transaction (signed at commit)."""
    signer_of(session)  # fail before any work if the session cannot sign
    heads: dict[str, AuditHead] = session.info.setdefault(_HEADS, {})
    head = heads.get(tenant_id)
    if head is None:
        head = heads[tenant_id] = await _locked_head(session, tenant_id)
    return head


def _chain(
    head: AuditHead,
    tenant_id: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None,
    request_id: str | None,
    client_ip: str | None,
) -> dict[str, Any]:
    """The next event's columns after ``head``, hashed onto the chain; moves the head."""
    fields: dict[str, Any] = {
        "tenant_id": tenant_id,
        "seq": head.seq + 1,
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "request_id": request_id,
        "client_ip": client_ip,
        "detail": detail or {},
    }
    digest = event_hash(prev_hash=head.hash, **fields)
    fields["prev_hash"], fields["hash"] = head.hash, digest
    head.seq, head.hash = fields["seq"], digest
    return fields


_EVENTS = cast(Table, AuditEvent.__table__)  # bulk appends as Core: no per-row ORM work
_HEADS = "musubi_audit_heads"
"""session.info key: the heads this transaction has locked and moved (signed at commit)."""


@orm_event.listens_for(TenantSession, "before_commit")
def _sign_heads(session: Session) -> None:
    """Sign each moved head once per transaction, just before the final flush."""
    heads: dict[str, AuditHead] = session.info.pop(_HEADS, {})
    if not heads:
        return
    signer = session.info.get("audit_signer")
    assert isinstance(signer, Signer)
    for tenant_id, head in heads.items():
        head.signature = signer.sign(head_message(tenant_id, head.seq, head.hash))
        head.key_id = signer.key_id


@orm_event.listens_for(TenantSession, "after_rollback")
def _forget_heads(session: Session) -> None:
    session.info.pop(_HEADS, None)


async def _locked_head(session: AsyncSession, tenant_id: str) -> AuditHead:
    """The tenant's head row, locked until commit; created on the tenant's first event.

    Two first events racing both insert-or-ignore, then queue on the row lock.
    """
    head = await session.get(AuditHead, tenant_id, with_for_update=True)
    if head is not None:
        return head
    await session.execute(
        insert_ignoring_conflicts(session, AuditHead).values(
            tenant_id=tenant_id, seq=0, hash=GENESIS, signature="", key_id=""
        )
    )
    head = await session.get(AuditHead, tenant_id, with_for_update=True, populate_existing=True)
    assert head is not None
    return head


@dataclass
class EventFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "*" ("key.*")
    target: str | None = None
    before_seq: int | None = None
    limit: int = 100


def _filtered(query: Any, f: EventFilter) -> Any:
    if f.since:
        query = query.where(AuditEvent.at >= f.since)
    if f.until:
        query = query.where(AuditEvent.at < f.until)
    if f.actor:
        query = query.where(AuditEvent.actor == f.actor)
    if f.action:
        if f.action.endswith("*"):
            query = query.where(AuditEvent.action.startswith(f.action[:-1], autoescape=True))
        else:
            query = query.where(AuditEvent.action == f.action)
    if f.target:
        query = query.where(AuditEvent.target == f.target)
    return query


async def list_events(session: AsyncSession, f: EventFilter) -> list[AuditEvent]:
    """Newest first; page with ``before_seq`` = the last ``seq`` seen."""
    query = _filtered(select(AuditEvent), f)
    if f.before_seq is not None:
        query = query.where(AuditEvent.seq < f.before_seq)
    query = query.order_by(AuditEvent.seq.desc()).limit(f.limit)
    return list((await session.scalars(query)).all())


async def stream_events(
    session: AsyncSession, f: EventFilter, chunk: int = 5000
) -> AsyncIterator[AuditEvent]:
    """Oldest first, without loading everything (for export)."""
    query = _filtered(select(AuditEvent), f).order_by(AuditEvent.seq)
    result = await session.stream_scalars(query.execution_options(yield_per=chunk))
    async for rows in result.partitions():
        for row in rows:
            yield row


def event_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "tenant_id": e.tenant_id,
        "seq": e.seq,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "request_id": e.request_id,
        "client_ip": e.client_ip,
        "detail": e.detail,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


@dataclass
class Break:
    """The first place the chain does not hold."""

    seq: int | None
    event_id: int | None
    reason: str


@dataclass
class VerifyReport:
    tenant_id: str
    checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    broken: Break | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "broken": None if self.broken is None else vars(self.broken),
        }


@asynccontextmanager
async def snapshot(db: Database) -> AsyncIterator[AsyncSession]:
    """A read-only session whose every query sees the same committed state: verify's.

    :func:`verify` compares the signed head with the events and the retention anchor, so
    it must read all three as of one moment; otherwise an append or a purge committing
    between its queries reads as tampering. PostgreSQL runs this transaction at REPEATABLE
    READ (its default, READ COMMITTED, takes a new snapshot per statement); a SQLite read
    transaction already keeps the snapshot of its first read.
    """
    async with db.read() as session:
        if not db.is_sqlite:
            # Before the first query: the isolation level is set as the transaction begins.
            await session.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        yield session


async def verify(session: AsyncSession, tenant_id: str, chunk: int = 10_000) -> VerifyReport:
    """Walk the tenant's chain from its retention anchor (or genesis) to its signed head.

    Finds edits (hash mismatch), deletions (a gap in ``seq`` or a head beyond the last
    event), insertions and reordering (a ``prev_hash`` that does not link, or a ``seq``
    out of place), and forged heads or anchors (bad signature).

    Give it a session from :func:`snapshot` when anything may write meanwhile.
    """
    signer = signer_of(session)
    report = VerifyReport(tenant_id)
    anchor = await session.scalar(
        select(AuditAnchor)
        .where(AuditAnchor.tenant_id == tenant_id)
        .order_by(AuditAnchor.seq.desc())
    )
    expected_seq, expected_prev = 1, GENESIS
    if anchor is not None:
        if not signer.verify(anchor_message(tenant_id, anchor.seq, anchor.hash), anchor.signature):
            report.broken = Break(anchor.seq, None, "retention anchor signature is invalid")
            return report
        expected_seq, expected_prev = anchor.seq + 1, anchor.hash
    head = await session.get(AuditHead, tenant_id)
    # Plain rows, not ORM objects: verify reads every event, so this is its hot loop.
    query = (
        select(*_CHAINED)
        .where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq >= expected_seq)
        .order_by(AuditEvent.seq, AuditEvent.id)
        .execution_options(yield_per=chunk)
    )
    result = await session.stream(query)
    async for rows in result.partitions():  # one await per chunk, not per row
        for e in rows:
            report.checked += 1
            if report.first_seq is None:
                report.first_seq = e.seq
            report.last_seq = e.seq
            reason = _check_event(e, tenant_id, expected_seq, expected_prev)
            if reason:
                report.broken = Break(e.seq, e.id, reason)
                await result.close()
                return report
            expected_seq, expected_prev = e.seq + 1, e.hash
    last_seq, last_hash = expected_seq - 1, expected_prev
    if head is None:
        if report.checked:
            report.broken = Break(None, None, "events exist but the chain has no signed head")
        return report
    if not signer.verify(head_message(tenant_id, head.seq, head.hash), head.signature):
        report.broken = Break(head.seq, None, "chain head signature is invalid")
    elif head.seq != last_seq or head.hash != last_hash:
        report.broken = Break(
            last_seq + 1,
            None,
            f"chain ends at seq {last_seq} but the signed head is at seq {head.seq} "
            "(events after it were deleted or the head was replaced)",
        )
    return report


_CHAINED = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.target,
    AuditEvent.outcome,
    AuditEvent.request_id,
    AuditEvent.client_ip,
    AuditEvent.detail,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def _check_event(e: Any, tenant_id: str, seq: int, prev: str) -> str | None:
    if e.seq != seq:
        if e.seq > seq:
            return f"expected seq {seq}, found {e.seq}: event {seq} was deleted"
        return f"seq {e.seq} appears twice or out of order: an event was inserted"
    if e.prev_hash != prev:
        return "prev_hash does not link to the previous event: inserted or reordered"
    recomputed = event_hash(
        prev_hash=e.prev_hash,
        tenant_id=tenant_id,
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
    if recomputed != e.hash:
        return "content does not match its hash: the event was edited"
    return None


async def purge(session: AsyncSession, tenant_id: str, older_than_days: int) -> int:
    """Delete events older than the retention, leaving a signed anchor so verify still holds.

    Returns how many events were removed. Only a prefix of the chain is ever removed.
    """
    cutoff = utcnow() - timedelta(days=older_than_days)
    last = await session.scalar(
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id, AuditEvent.at < cutoff)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )
    if last is None:
        return 0
    signer = signer_of(session)
    count = await session.scalar(
        select(func.count()).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq <= last.seq)
    )
    await session.execute(
        delete(AuditAnchor).where(AuditAnchor.tenant_id == tenant_id, AuditAnchor.seq < last.seq)
    )
    session.add(
        AuditAnchor(
            tenant_id=tenant_id,
            seq=last.seq,
            hash=last.hash,
            signature=signer.sign(anchor_message(tenant_id, last.seq, last.hash)),
            key_id=signer.key_id,
            created_at=utcnow(),
        )
    )
    await session.execute(
        delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq <= last.seq)
    )
    return int(count or 0)
