"""Signed checkpoints of every chain's head, kept outside the database.

Nothing inside the database can show that it was rolled back: an older copy of a chain,
head included, is as validly signed as it was then. So the operator exports a
checkpoint now and then (``musubi audit checkpoint -o FILE``, appending one JSON line)
and keeps the file elsewhere, like a Certificate Transparency signed tree head or a
CloudTrail digest file. A checkpoint lists each chain's ``(seq, hash)`` and is signed
as a whole, so it also fixes the set of chains. ``musubi audit verify --checkpoints FILE``
then fails when a chain is behind a checkpoint (rolled back), no longer holds the
checkpointed event (diverged), or is gone.

A checkpoint is only written for a log that verifies whole (:func:`verify_all`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.audit.signing import signer_of
from musubi.audit.verify import verify_all
from musubi.errors import AuditIntegrityError, InvalidInput
from musubi.storage.base import utcnow

__all__ = ["Mismatch", "check", "parse", "take"]

VERSION = 1


def _message(at: str, heads: dict[str, Any]) -> str:
    body = json.dumps({"at": at, "heads": heads}, sort_keys=True, separators=(",", ":"))
    return f"musubi-audit-checkpoint/{VERSION}\n{body}"


async def take(session: AsyncSession) -> dict[str, Any]:
    """A signed checkpoint of every chain; refused if any chain does not verify."""
    broken = [r for r in await verify_all(session) if r.broken is not None]
    if broken:
        names = ", ".join(f"{r.tenant_id} ({r.broken.reason})" for r in broken if r.broken)
        raise AuditIntegrityError(f"no checkpoint: these audit chains do not verify: {names}")
    heads = {
        h.tenant_id: {"seq": h.seq, "hash": h.hash}
        for h in (await session.scalars(select(AuditHead).order_by(AuditHead.tenant_id))).all()
    }
    signer = signer_of(session)
    at = utcnow().isoformat(timespec="seconds")
    return {
        "version": VERSION,
        "at": at,
        "key_id": signer.key_id,
        "heads": heads,
        "signature": signer.sign(_message(at, heads)),
    }


def parse(text: str, source: str) -> list[dict[str, Any]]:
    """The checkpoints of a file written by ``musubi audit checkpoint`` (JSON Lines)."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            cp = json.loads(line)
            ok = isinstance(cp, dict) and isinstance(cp.get("heads"), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            raise InvalidInput(
                f"{source}:{n} is not a MUSUBI audit checkpoint", field="checkpoints"
            )
        found.append(cp)
    return found


@dataclass(frozen=True)
class Mismatch:
    tenant_id: str
    reason: str


async def check(
    session: AsyncSession, checkpoint: dict[str, Any], only: str | None = None
) -> list[Mismatch]:
    """How the database differs from ``checkpoint`` (for one chain, or every chain)."""
    at = str(checkpoint.get("at"))
    heads: dict[str, Any] = checkpoint["heads"]
    if not signer_of(session).verify(_message(at, heads), str(checkpoint.get("signature"))):
        return [Mismatch(only or "*", f"the checkpoint of {at} is not signed by this key")]
    found = []
    for tenant_id, cp in sorted(heads.items()):
        if only is not None and tenant_id != only:
            continue
        reason = await _differs(session, tenant_id, int(cp["seq"]), str(cp["hash"]))
        if reason:
            found.append(Mismatch(tenant_id, f"{reason} (checkpoint of {at})"))
    return found


async def _differs(session: AsyncSession, tenant_id: str, seq: int, hash_: str) -> str | None:
    head = await session.get(AuditHead, tenant_id)
    if head is None:
        return f"the chain was checkpointed at seq {seq} but is gone from the database"
    if head.seq < seq:
        return (
            f"the chain is at seq {head.seq}, behind the checkpointed seq {seq}: "
            "the database was rolled back"
        )
    stored = await session.scalar(
        select(AuditEvent.hash).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq == seq)
    )
    if stored is None and head.seq == seq:
        stored = head.hash
    if stored is None:
        anchor = await session.scalar(
            select(AuditAnchor)
            .where(AuditAnchor.tenant_id == tenant_id)
            .order_by(AuditAnchor.seq.desc())
            .limit(1)
        )
        if anchor is not None and anchor.seq > seq:
            return None  # removed by retention since; the signed anchor vouches for it
        stored = anchor.hash if anchor is not None and anchor.seq == seq else None
    if stored != hash_:
        return f"the chain no longer holds the checkpointed event at seq {seq}: it diverged"
    return None
