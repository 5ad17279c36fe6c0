"""Retention: remove each chain's oldest events, leaving a signed anchor so the rest verifies.

Three rules keep retention from being a way to erase the log:

* the days applied are never below the operator's floor (``MUSUBI_AUDIT_RETENTION_MIN_DAYS``),
  nor below a retention that was lowered less than its old number of days ago: an event is
  kept as long as the policy in force when it was written promised (read from the chain's
  own ``tenant.update`` events);
* only the prefix before the first event young enough to keep is removed, so one event
  back-dated in the database cannot pull the newer events after it along;
* the events about to be removed are verified first (and the head, as for an append): an
  edited, inserted or deleted event stops the purge with :class:`AuditIntegrityError`
  instead of being hidden under a freshly signed anchor.

Purging the ``_system`` chain carries its tenant registry forward (``audit.registry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.chain import GENESIS, anchor_message
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.audit.service import lock_chain, record
from musubi.audit.signing import signer_of
from musubi.audit.verify import CHAINED, REGISTRY_ACTIONS, check_event, registered_in
from musubi.context import SYSTEM_TENANT, system_scope
from musubi.errors import AuditIntegrityError, InvalidInput
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.storage.tenants import Tenant

__all__ = ["DEFAULT_DAYS", "Purged", "check_retention", "effective_days", "purge", "purge_all"]

DEFAULT_DAYS = 365


@dataclass(frozen=True)
class Purged:
    removed: int
    retention_days: int
    """The days applied: the tenant's, or more (floor, a recently lowered retention)."""


def check_retention(days: int, floor_days: int) -> None:
    """Refuse a retention below the operator's floor (422 naming the field)."""
    if days < floor_days:
        raise InvalidInput(
            f"audit_retention_days must be at least {floor_days} "
            "(the server's MUSUBI_AUDIT_RETENTION_MIN_DAYS)",
            field="audit_retention_days",
        )


async def effective_days(
    session: AsyncSession, tenant_id: str, days: int, floor_days: int, now: datetime
) -> int:
    """``days``, raised to the floor and to any retention lowered less than its days ago."""
    effective = max(days, floor_days)
    changes = await session.execute(
        select(AuditEvent.at, AuditEvent.detail).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == "tenant.update"
        )
    )
    for at, detail in changes:
        change = detail.get("audit_retention_days") if isinstance(detail, dict) else None
        if not (isinstance(change, list) and len(change) == 2 and isinstance(change[0], int)):
            continue
        old = change[0]
        if _aware(at) + timedelta(days=old) > now:  # the old policy still covers events
            effective = max(effective, old)
    return effective


async def purge(
    session: AsyncSession, tenant_id: str, retention_days: int, floor_days: int = 1
) -> Purged:
    """Remove the events older than the effective retention; only ever a prefix."""
    await lock_chain(session, tenant_id)  # refuses a head that does not verify
    now = utcnow()
    days = await effective_days(session, tenant_id, retention_days, floor_days, now)
    cutoff = now - timedelta(days=days)
    keep_from = await session.scalar(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.at >= cutoff
        )
    )
    query = select(*CHAINED).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.seq)
    if keep_from is not None:
        query = query.where(AuditEvent.seq < keep_from)
    anchor = await session.scalar(
        select(AuditAnchor)
        .where(AuditAnchor.tenant_id == tenant_id)
        .order_by(AuditAnchor.seq.desc())
        .limit(1)
    )
    seq, prev = (anchor.seq + 1, anchor.hash) if anchor is not None else (1, GENESIS)
    registered: set[str] = set()
    count = 0
    result = await session.stream(query.execution_options(yield_per=10_000))
    async for rows in result.partitions():  # a first purge may walk most of a long chain
        for e in rows:
            reason = check_event(e, tenant_id, seq, prev)
            if reason:
                await result.close()
                raise AuditIntegrityError(
                    f"refusing to purge the audit chain of tenant {tenant_id!r}: at seq "
                    f"{e.seq}, {reason} (run `musubi audit verify`)",
                    tenant_id=tenant_id,
                )
            if e.action in REGISTRY_ACTIONS:
                registered.update(registered_in(e.action, e.target, e.detail))
            seq, prev, count = e.seq + 1, e.hash, count + 1
    if count == 0:
        return Purged(0, days)
    last_seq, last_hash = seq - 1, prev
    await _check_link(session, tenant_id, last_seq, last_hash)
    signer = signer_of(session)
    await session.execute(
        delete(AuditAnchor).where(AuditAnchor.tenant_id == tenant_id, AuditAnchor.seq < last_seq)
    )
    session.add(
        AuditAnchor(
            tenant_id=tenant_id,
            seq=last_seq,
            hash=last_hash,
            signature=signer.sign(anchor_message(tenant_id, last_seq, last_hash)),
            key_id=signer.key_id,
            created_at=now,
        )
    )
    await session.execute(
        delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq <= last_seq)
    )
    if registered:  # the registry must outlive the events that held it
        await record(
            session,
            "audit.registry",
            tenant_id=SYSTEM_TENANT,
            detail={"tenants": sorted(registered)},
        )
    return Purged(count, days)


async def _check_link(session: AsyncSession, tenant_id: str, seq: int, hash_: str) -> None:
    """The event after the purged prefix (or the head) must link to its last event."""
    after = await session.scalar(
        select(AuditEvent.prev_hash).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.seq == seq + 1
        )
    )
    if after is None:
        head = await session.get(AuditHead, tenant_id)
        linked = head is not None and (head.seq, head.hash) == (seq, hash_)
    else:
        linked = after == hash_
    if not linked:
        raise AuditIntegrityError(
            f"refusing to purge the audit chain of tenant {tenant_id!r}: the events after "
            f"seq {seq} do not link to it (run `musubi audit verify`)",
            tenant_id=tenant_id,
        )


async def purge_all(
    db: Database, default_days: int = DEFAULT_DAYS, floor_days: int = 1
) -> dict[str, int]:
    """Purge every chain (deleted tenants' and the system chain use ``default_days``).

    Returns {tenant_id: events removed} for the chains that lost events. A chain that
    does not verify is skipped and named in the raised error, after the others ran.
    """
    removed: dict[str, int] = {}
    refused: list[str] = []
    with system_scope():
        async with db.read() as s:
            chains = list((await s.scalars(select(AuditHead.tenant_id))).all())
            days = {t.id: t.audit_retention_days for t in (await s.scalars(select(Tenant))).all()}
        for tenant_id in chains:
            try:
                async with db.transaction() as s:
                    done = await purge(s, tenant_id, days.get(tenant_id, default_days), floor_days)
                    if done.removed:
                        await record(
                            s,
                            "audit.purge",
                            tenant_id,
                            tenant_id=tenant_id,
                            detail=_detail(done),
                        )
                        removed[tenant_id] = done.removed
            except AuditIntegrityError as exc:
                refused.append(exc.message)
    if refused:
        raise AuditIntegrityError("; ".join(refused))
    return removed


def _detail(done: Purged) -> dict[str, Any]:
    return {"removed": done.removed, "retention_days": done.retention_days}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
