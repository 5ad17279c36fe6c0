"""Verify chains: walk each from its retention anchor (or genesis) to its signed head.

Also the checks that guard an append (:func:`check_head`): the server extends a chain only
from a head whose signature holds and whose last event still hashes to it, so someone
who can write the database but has no key cannot get a forged chain signed.

The set of chains is covered too (:func:`verify_all`): every tenant's creation is recorded
in the ``_system`` chain (the registry), so deleting a tenant's events together with its
head row, or its tenant row as well, leaves a registered chain without a head.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, TextualSelect, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.chain import (
    GENESIS,
    anchor_message,
    batch_message,
    event_hash,
    head_leaf,
    head_message,
    root_of,
)
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.audit.signing import Signer, signer_of
from musubi.context import SYSTEM_TENANT, system_scope
from musubi.errors import AuditIntegrityError
from musubi.storage.database import Database
from musubi.storage.tenants import Tenant

__all__ = [
    "CHAINED",
    "REGISTRY_ACTIONS",
    "AnyHead",
    "Break",
    "Head",
    "SignedHead",
    "VerifyReport",
    "check_event",
    "check_head",
    "has_signed_heads",
    "head_signed",
    "registered_in",
    "snapshot",
    "verify",
    "verify_all",
]

REGISTRY_ACTIONS = ("tenant.create", "audit.registry")
"""Events of the ``_system`` chain that register tenants: ``tenant.create`` (its target)
and ``audit.registry`` (``detail.tenants``: carried over a purge, or the first list)."""


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


async def verify(
    session: AsyncSession,
    tenant_id: str,
    chunk: int = 10_000,
    *,
    tenant_chain: bool = False,
    registry: set[str] | None = None,
) -> VerifyReport:
    """Walk the tenant's chain from its retention anchor (or genesis) to its signed head.

    Finds edits (hash mismatch), deletions (a gap in ``seq`` or a head beyond the last
    event), insertions and reordering (a ``prev_hash`` that does not link, or a ``seq``
    out of place), and forged heads or anchors (bad signature). ``tenant_chain``: the
    chain belongs to a tenant, so its first event must be that tenant's creation (a chain
    deleted and begun again is found). ``registry``: filled with the tenants the walked
    events register (for the ``_system`` chain).

    Give it a session from :func:`snapshot` when anything may write meanwhile.
    """
    signer = signer_of(session)
    report = VerifyReport(tenant_id)
    anchor = await _anchor(session, tenant_id)
    expected_seq, expected_prev = 1, GENESIS
    if anchor is not None:
        if not signer.verify(anchor_message(tenant_id, anchor.seq, anchor.hash), anchor.signature):
            report.broken = Break(anchor.seq, None, "retention anchor signature is invalid")
            return report
        expected_seq, expected_prev = anchor.seq + 1, anchor.hash
    head = await session.get(AuditHead, tenant_id)
    # Plain rows, not ORM objects: verify reads every event, so this is its hot loop.
    query = (
        select(*CHAINED)
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
            reason = check_event(e, tenant_id, expected_seq, expected_prev)
            if reason is None and e.seq == 1 and tenant_chain and _begun_again(e, tenant_id):
                reason = "the chain does not begin with the tenant's creation: begun again"
            if reason:
                report.broken = Break(e.seq, e.id, reason)
                await result.close()
                return report
            if registry is not None and e.action in REGISTRY_ACTIONS:
                registry.update(registered_in(e.action, e.target, e.detail))
            expected_seq, expected_prev = e.seq + 1, e.hash
    last_seq, last_hash = expected_seq - 1, expected_prev
    if head is None:
        if report.checked or anchor is not None:
            report.broken = Break(None, None, "events exist but the chain has no signed head")
        return report
    if not head_signed(signer, head):
        report.broken = Break(head.seq, None, "chain head signature is invalid")
    elif head.seq != last_seq or head.hash != last_hash:
        report.broken = Break(
            last_seq + 1,
            None,
            f"chain ends at seq {last_seq} but the signed head is at seq {head.seq} "
            "(events after it were deleted or the head was replaced)",
        )
    return report


async def verify_all(session: AsyncSession) -> list[VerifyReport]:
    """Every chain: each head's, each tenant's and each the registry names.

    A tenant (in the ``tenants`` table or registered in the ``_system`` chain) whose
    chain has no head is reported broken: its events and head row were deleted.
    """
    heads = set((await session.scalars(select(AuditHead.tenant_id))).all())
    tenants = set((await session.scalars(select(Tenant.id))).all())
    registered: set[str] = set()
    reports: dict[str, VerifyReport] = {}
    if SYSTEM_TENANT in heads:  # first: it tells which tenants must have a chain
        reports[SYSTEM_TENANT] = await verify(session, SYSTEM_TENANT, registry=registered)
    elif tenants or heads:
        missing = VerifyReport(SYSTEM_TENANT)
        missing.broken = Break(
            None, None, "the '_system' chain, which registers every tenant, is missing"
        )
        reports[SYSTEM_TENANT] = missing
    for tenant_id in sorted((heads | tenants | registered) - {SYSTEM_TENANT}):
        is_tenant = tenant_id in tenants or tenant_id in registered
        if tenant_id not in heads:
            gone = VerifyReport(tenant_id)
            where = "is registered" if tenant_id in registered else "exists"
            gone.broken = Break(
                None,
                None,
                f"the tenant {where} but its audit chain has no head: its events and "
                "head were deleted",
            )
            reports[tenant_id] = gone
            continue
        reports[tenant_id] = await verify(session, tenant_id, tenant_chain=is_tenant)
    return [reports[k] for k in sorted(reports)]


def _begun_again(e: Any, tenant_id: str) -> bool:
    return bool(e.action != "tenant.create" or e.target != tenant_id)


def registered_in(action: str, target: str, detail: dict[str, Any]) -> list[str]:
    """The tenants a registry event names."""
    if action == "tenant.create":
        return [target]
    tenants = detail.get("tenants", [])
    return [str(t) for t in tenants] if isinstance(tenants, list) else []


@dataclass(slots=True)
class Head:
    """A chain head as a plain row: the usage ledger locks and moves the heads of the
    many tenants of a flush without an ORM object (and two UPDATEs) for each; they are
    written back in one statement when signed (:func:`musubi.audit.service._sign_heads`)."""

    tenant_id: str
    seq: int
    hash: str
    signature: str
    key_id: str
    proof: str


AnyHead = AuditHead | Head


@dataclass(frozen=True)
class SignedHead:
    """A head as this process signed it; ``event``: the columns of the event at it, as
    this process hashed them (kept for the usage ledger's appends)."""

    seq: int
    hash: str
    signature: str
    proof: str = ""
    event: dict[str, Any] | None = field(default=None, compare=False)


def _as_written(head: AnyHead, last: Any, mine: SignedHead) -> bool:
    """Whether ``head`` is exactly as this process signed it and ``last``, the event at
    it, holds every value this process hashed into it (so it hashes to it too)."""
    event = mine.event
    if event is None or (head.seq, head.hash, head.signature, head.proof) != (
        mine.seq,
        mine.hash,
        mine.signature,
        mine.proof,
    ):
        return False
    return all(getattr(last, k) == event[k] for k in _WRITTEN) and event["hash"] == head.hash


_WRITTEN = (
    "seq",
    "at",
    "actor",
    "action",
    "target",
    "outcome",
    "request_id",
    "client_ip",
    "detail",
    "prev_hash",
    "hash",
)


def head_signed(signer: Signer, head: AnyHead) -> bool:
    """Whether ``head``'s signature holds: over the head alone (no proof), or over the
    root its inclusion proof leads to (a batch; see :mod:`musubi.audit.chain`)."""
    if not head.proof:
        return signer.verify(head_message(head.tenant_id, head.seq, head.hash), head.signature)
    root = root_of(head_leaf(head.tenant_id, head.seq, head.hash), head.proof)
    return root is not None and signer.verify(batch_message(root), head.signature)


async def check_head(session: AsyncSession, head: AnyHead, mine: SignedHead | None = None) -> None:
    """Refuse (:class:`AuditIntegrityError`) a head this server must not extend.

    Its signature must hold; its last event (or, for a chain emptied by retention, its
    anchor) must still hash to it; and it must not be behind ``mine``, the highest head
    this process has committed for the chain (a rolled-back head). A head exactly as
    this process signed it needs no signature check.
    """
    _check_signed(session, head, mine)
    # On the connection, as Core: every append runs this, and the ORM's per-statement
    # work (tenant criteria, entity loading) would cost more than the query.
    connection = await session.connection()
    last = (await connection.execute(_LAST_EVENT, {"t": head.tenant_id, "s": head.seq})).first()
    await _check_at_head(session, head, last, mine)


async def check_heads(
    session: AsyncSession, heads: list[Head], seen: dict[str, SignedHead]
) -> None:
    """:func:`check_head` for many chains (the usage ledger's flush, with calls of many
    tenants): one query reads the events at all their heads, instead of one per tenant."""
    if len(heads) < 2:
        for head in heads:
            await check_head(session, head, seen.get(head.tenant_id))
        return
    for head in heads:
        _check_signed(session, head, seen.get(head.tenant_id))
    connection = await session.connection()
    params: dict[str, Any] = {}
    for i, h in enumerate(heads):
        params[f"t_{i}"], params[f"s_{i}"] = h.tenant_id, h.seq
    rows = (await connection.execute(_at_heads(len(heads)), params)).all()
    last = {row.tenant_id: row for row in rows}
    for head in heads:
        await _check_at_head(session, head, last.get(head.tenant_id), seen.get(head.tenant_id))


def _check_signed(session: AsyncSession, head: AnyHead, mine: SignedHead | None) -> None:
    signer = signer_of(session)
    tenant_id = head.tenant_id
    where = f"the audit chain of tenant {tenant_id!r}"
    if mine is not None and head.seq < mine.seq:
        raise AuditIntegrityError(
            f"{where} is at seq {head.seq} but this server signed seq {mine.seq}: the "
            "database was rolled back; refusing to extend it",
            tenant_id=tenant_id,
        )
    own = mine is not None and (head.seq, head.hash, head.signature, head.proof) == (
        mine.seq,
        mine.hash,
        mine.signature,
        mine.proof,
    )
    if not own and not head_signed(signer, head):
        raise AuditIntegrityError(
            f"{where} has a head whose signature does not verify; refusing to extend it "
            "(run `musubi audit verify --all-tenants`)",
            tenant_id=tenant_id,
        )


async def _check_at_head(
    session: AsyncSession, head: AnyHead, last: Any, mine: SignedHead | None = None
) -> None:
    """The event at the head (``last``, None if there is none) must still hash to it.

    An event equal, field by field, to the one this process hashed into the head it
    signed (``mine.event``) does: only events that differ are hashed again (the usage
    ledger checks the head of every tenant in a flush; issue 24)."""
    tenant_id = head.tenant_id
    where = f"the audit chain of tenant {tenant_id!r}"
    if (
        last is not None
        and mine is not None
        and mine.event is not None
        and _as_written(head, last, mine)
    ):
        return
    if last is not None:
        edited = check_event(last, tenant_id, head.seq, last.prev_hash)
        holds = last.hash == head.hash and edited is None
    else:  # every event removed by retention: the anchor is the head
        signer = signer_of(session)
        anchor = await _anchor(session, tenant_id)
        holds = (
            anchor is not None
            and (anchor.seq, anchor.hash) == (head.seq, head.hash)
            and signer.verify(anchor_message(tenant_id, anchor.seq, anchor.hash), anchor.signature)
        )
    if holds:
        return
    raise AuditIntegrityError(
        f"{where}: the event at its signed head (seq {head.seq}) is missing or was changed; "
        "refusing to extend it (run `musubi audit verify --all-tenants`)",
        tenant_id=tenant_id,
    )


async def has_signed_heads(db: Database) -> bool:
    """Whether any chain has a signed head or anchor (so a key already signed this log)."""
    with system_scope():
        async with db.read() as s:
            for model in (AuditHead, AuditAnchor):
                found = await s.scalar(
                    select(model.tenant_id).where(model.signature != "").limit(1)
                )
                if found is not None:
                    return True
    return False


async def _anchor(session: AsyncSession, tenant_id: str) -> AuditAnchor | None:
    anchor: AuditAnchor | None = await session.scalar(
        select(AuditAnchor)
        .where(AuditAnchor.tenant_id == tenant_id)
        .order_by(AuditAnchor.seq.desc())
        .limit(1)
    )
    return anchor


_EVENTS = cast(Table, AuditEvent.__table__)

CHAINED = (
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


_LAST_EVENT = select(*(_EVENTS.c[c.key] for c in CHAINED)).where(
    _EVENTS.c.tenant_id == bindparam("t"), _EVENTS.c.seq == bindparam("s")
)
"""The event at a head: built once, so each append reuses its compiled form."""


@functools.lru_cache(maxsize=512)
def _at_heads(count: int) -> TextualSelect:
    """The events at ``count`` heads (binds ``t_i``, ``s_i``), built once per count.

    An OR of (tenant, seq) pairs: SQLite plans a row-value IN as a scan of every event,
    and this as one search of the (tenant_id, seq) index per head. Text, not an
    expression: building and compiling an OR of 200 expressions cost more CPU per flush
    than the rest of checking the heads (issue 24).
    """
    names = ["tenant_id", *(c.key for c in CHAINED)]
    pairs = " OR ".join(f"(tenant_id = :t_{i} AND seq = :s_{i})" for i in range(count))
    statement = text(f"SELECT {', '.join(names)} FROM audit_events WHERE {pairs}")
    return statement.columns(*(_EVENTS.c[n] for n in names))


def check_event(e: Any, tenant_id: str, seq: int, prev: str) -> str | None:
    """Why event row ``e`` does not sit at ``seq`` after ``prev``, or None if it does."""
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
