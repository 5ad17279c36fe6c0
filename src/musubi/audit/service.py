"""Append to and query the audit log (verify: :mod:`.verify`; retention: :mod:`.retention`).

:func:`record` adds the event to the caller's session, so it commits or rolls back with
the change it describes. Appends of one tenant are ordered by locking that tenant's
:class:`AuditHead` row, which also carries the Ed25519 signature over the newest event.
The locked head is checked first (:func:`~musubi.audit.verify.check_head`): the server
signs only heads it computed from a head it verified, never one it merely found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from musubi.audit.chain import (
    GENESIS,
    batch_message,
    event_hash,
    head_leaf,
    head_message,
    heads_tree,
)
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.audit.signing import Signer, signer_of
from musubi.audit.verify import (
    REGISTRY_ACTIONS,
    AnyHead,
    Break,
    Head,
    SignedHead,
    VerifyReport,
    check_head,
    check_heads,
    snapshot,
    verify,
    verify_all,
)
from musubi.context import SYSTEM_TENANT, current_actor, current_tenant_id, system_scope
from musubi.errors import AuditIntegrityError, TenantScopeError
from musubi.storage.base import utcnow
from musubi.storage.database import insert_ignoring_conflicts
from musubi.storage.scoping import TenantSession
from musubi.storage.tenants import Tenant

if TYPE_CHECKING:
    from musubi.storage.database import Database

__all__ = [
    "Break",
    "EventFilter",
    "NewEvent",
    "VerifyReport",
    "event_dict",
    "list_events",
    "lock_chain",
    "record",
    "record_many",
    "register_tenants",
    "signer_of",
    "snapshot",
    "stream_events",
    "verify",
    "verify_all",
]


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
    await _lock_heads(session, [e.tenant_id for e in events])
    written: dict[str, dict[str, Any]] = session.info.setdefault(_WRITTEN, {})
    for e in events:
        head = await _head_for(session, e.tenant_id)
        row = _chain(
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
        rows.append(row)
        written[e.tenant_id] = row
    if rows:
        await session.execute(insert(_EVENTS), rows)


async def lock_chain(session: AsyncSession, tenant_id: str) -> AnyHead:
    """Lock the tenant's chain for this transaction, as an append does (head checked)."""
    return await _head_for(session, tenant_id)


async def _head_for(session: AsyncSession, tenant_id: str) -> AnyHead:
    """The tenant's head, locked once per transaction (signed at commit)."""
    signer_of(session)  # fail before any work if the session cannot sign
    heads: dict[str, AnyHead] = session.info.setdefault(_HEADS, {})
    head = heads.get(tenant_id)
    if head is None:
        head = heads[tenant_id] = await _locked_head(session, tenant_id)
    return head


async def _lock_heads(session: AsyncSession, tenant_ids: list[str]) -> None:
    """Lock and check the heads of many chains at once (:func:`_head_for` then finds
    them): one query for the heads, in tenant order (so two processes lock rows in the
    same order), and one for the events at them. A flush of calls of 200 tenants cost 400
    queries before. The heads are plain rows (:class:`Head`), written back in one
    statement at commit. A new chain (or a missing head) takes :func:`_locked_head`'s
    path."""
    signer_of(session)
    heads: dict[str, AnyHead] = session.info.setdefault(_HEADS, {})
    missing = sorted({t for t in tenant_ids if t not in heads})
    if len(missing) < 2:
        return
    connection = await session.connection()
    query = (
        select(*(_HEAD_ROWS.c[k] for k in _HEAD_COLUMNS))
        .where(_HEAD_ROWS.c.tenant_id.in_(missing))
        .order_by(_HEAD_ROWS.c.tenant_id)
        .with_for_update()
    )
    found = [Head(*row) for row in (await connection.execute(query)).all()]
    started = [h for h in found if h.seq or h.hash != GENESIS or h.signature]
    seen = session.info.get(SEEN)
    await check_heads(session, started, seen if isinstance(seen, dict) else {})
    for head in started:
        heads[head.tenant_id] = head


def _chain(
    head: AnyHead,
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
_HEAD_ROWS = cast(Table, AuditHead.__table__)
_HEAD_COLUMNS = ("tenant_id", "seq", "hash", "signature", "key_id", "proof")  # Head's fields
_WRITE_HEAD = (
    update(_HEAD_ROWS)
    .where(_HEAD_ROWS.c.tenant_id == bindparam("b_tenant_id"))
    .values({k: bindparam(f"b_{k}") for k in _HEAD_COLUMNS[1:]})
)
"""The heads of a batch (:class:`Head`), written back in one executemany."""
_HEADS = "musubi_audit_heads"
"""session.info key: the heads this transaction has locked and moved (signed at commit)."""


_WRITTEN = "musubi_audit_written"
"""session.info key: {tenant: columns of the last event record_many appended}: kept with
the signed head, so the next flush need not hash that event again to check it."""
_SIGNED = "musubi_audit_signed"
"""session.info key: {tenant: SignedHead} signed by this transaction, until it commits."""
SEEN = "audit_heads_seen"
"""Database.session_info key: {tenant: SignedHead}, the highest head each chain reached in
a transaction this process committed. A head found below it was rolled back."""


@orm_event.listens_for(TenantSession, "before_commit")
def _sign_heads(session: Session) -> None:
    """Sign the moved heads just before the final flush: one head alone, several (the
    usage ledger's flush of many tenants' calls) with one signature over the root of
    their Merkle tree, each head keeping its inclusion proof (:mod:`.chain`)."""
    heads: dict[str, AnyHead] = session.info.pop(_HEADS, {})
    if not heads:
        return
    signer = session.info.get("audit_signer")
    assert isinstance(signer, Signer)
    if len(heads) == 1:
        [(tenant_id, head)] = heads.items()
        head.signature = signer.sign(head_message(tenant_id, head.seq, head.hash))
        head.proof = ""
    else:
        moved = sorted(heads.items())
        root, proofs = heads_tree([head_leaf(t, h.seq, h.hash) for t, h in moved])
        signature = signer.sign(batch_message(root))
        for (_, head), proof in zip(moved, proofs, strict=True):
            head.signature, head.proof = signature, proof
    rows = []
    for head in heads.values():
        head.key_id = signer.key_id
        if isinstance(head, Head):  # a plain row: not flushed by the ORM
            rows.append({f"b_{k}": getattr(head, k) for k in _HEAD_COLUMNS})
    if rows:
        session.connection().execute(_WRITE_HEAD, rows)
    written: dict[str, dict[str, Any]] = session.info.pop(_WRITTEN, {})
    session.info[_SIGNED] = {
        t: SignedHead(h.seq, h.hash, h.signature, h.proof, _at(written.get(t), h))
        for t, h in heads.items()
    }


def _at(event: dict[str, Any] | None, head: AnyHead) -> dict[str, Any] | None:
    """``event`` if it is the one at ``head`` (a later append may have moved it)."""
    if event is None or (event["seq"], event["hash"]) != (head.seq, head.hash):
        return None
    return event


@orm_event.listens_for(TenantSession, "after_commit")
def _remember_heads(session: Session) -> None:
    signed: dict[str, SignedHead] = session.info.pop(_SIGNED, {})
    seen = session.info.get(SEEN)
    if isinstance(seen, dict):
        for tenant_id, head in signed.items():
            before = seen.get(tenant_id)
            if before is None or head.seq > before.seq:
                seen[tenant_id] = head


@orm_event.listens_for(TenantSession, "after_rollback")
def _forget_heads(session: Session) -> None:
    session.info.pop(_HEADS, None)
    session.info.pop(_SIGNED, None)
    session.info.pop(_WRITTEN, None)


async def _locked_head(session: AsyncSession, tenant_id: str) -> AuditHead:
    """The tenant's head row, locked until commit, checked before it is extended.

    Created on the chain's first event, unless the chain already has events or an anchor
    (its head row was deleted: a break, never a new beginning). Two first events racing
    both insert-or-ignore, then queue on the row lock.
    """
    head = await session.get(AuditHead, tenant_id, with_for_update=True)
    if head is None:
        await session.execute(
            insert_ignoring_conflicts(session, AuditHead).values(
                tenant_id=tenant_id, seq=0, hash=GENESIS, signature="", key_id="", proof=""
            )
        )
        head = await session.get(AuditHead, tenant_id, with_for_update=True, populate_existing=True)
        assert head is not None
    seen = session.info.get(SEEN)
    mine: SignedHead | None = seen.get(tenant_id) if isinstance(seen, dict) else None
    if head.seq == 0 and head.hash == GENESIS and not head.signature:
        # A new chain (a racing first event would have moved and signed it by now).
        if mine is not None or await _has_trail(session, tenant_id):
            raise AuditIntegrityError(
                f"the audit chain of tenant {tenant_id!r} has events (or had, in this "
                "process) but no signed head: it was deleted or replaced; refusing to begin "
                "it again (run `musubi audit verify --all-tenants`)",
                tenant_id=tenant_id,
            )
        return head
    await check_head(session, head, mine)
    return head


async def _has_trail(session: AsyncSession, tenant_id: str) -> bool:
    for model in (AuditEvent, AuditAnchor):
        found = await session.scalar(select(model.id).where(model.tenant_id == tenant_id).limit(1))
        if found is not None:
            return True
    return False


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


async def register_tenants(db: Database) -> None:
    """Begin the tenant registry of a database from before it existed (once).

    Since then each ``tenant.create`` is also recorded in the ``_system`` chain, so
    :func:`~musubi.audit.verify.verify_all` finds a tenant whose chain was deleted whole.
    A database with tenants but no registry event yet gets one ``audit.registry`` event
    listing the tenants of the moment.
    """
    with system_scope():
        async with db.transaction() as s:
            registered = await s.scalar(
                select(AuditEvent.id)
                .where(
                    AuditEvent.tenant_id == SYSTEM_TENANT,
                    AuditEvent.action.in_(REGISTRY_ACTIONS),
                )
                .limit(1)
            )
            if registered is not None:
                return
            tenants = sorted((await s.scalars(select(Tenant.id))).all())
            if tenants:
                await record(
                    s, "audit.registry", tenant_id=SYSTEM_TENANT, detail={"tenants": tenants}
                )
