"""Chat alerts that are no run event, recorded where they are found: a quota crossing 80 %
of its limit (:mod:`musubi.quotas.service`), an audit chain found broken (``musubi audit
verify``, ``GET /v1/audit/verify``). Each is a row of ``chat_alerts``, unique per tenant
and ``key``, so two processes finding the same one record it once.

Posting them to the tenant's chats is :mod:`musubi.integrations.alerts`. Recording lives
apart, below quotas: the gateway reserves quota on every call, and the integrations (which
post) sit above the gateway, so quotas must not import them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from musubi.context import bind_tenant
from musubi.storage.base import Base, TenantScoped, new_id, utcnow
from musubi.storage.database import Database

__all__ = ["ChatAlert", "audit_alert_key", "record_alert", "record_audit_failure"]


class ChatAlert(TenantScoped, Base):
    """Something the tenant's chats should hear that is no run event: a quota crossing
    80 % in one window, an audit chain found broken. ``key`` names the occurrence (the
    counter and its window, the break), unique per tenant, so two processes finding the
    same one record it once; :mod:`musubi.integrations.alerts` posts it. ``project_id``
    is the project concerned, or ``None`` for the whole tenant (every chat of it)."""

    __tablename__ = "chat_alerts"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("alr"))
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    project_id: Mapped[str | None] = mapped_column(String(40), default=None)
    kind: Mapped[str] = mapped_column(String(20))  # quota_80 | audit_failed
    key: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


async def record_alert(
    db: Database,
    tenant_id: str,
    kind: str,
    key: str,
    title: str,
    text: str,
    facts: dict[str, str],
    project_id: str | None = None,
) -> bool:
    """Record an alert for ``tenant_id``'s chats: ``False`` when ``key`` was recorded
    before (by this process or another), so it is posted once."""
    try:
        with bind_tenant(tenant_id):
            async with db.transaction() as s:
                s.add(
                    ChatAlert(
                        tenant_id=tenant_id,
                        project_id=project_id,
                        kind=kind,
                        key=key[:200],
                        title=title[:200],
                        text=text,
                        facts=facts,
                    )
                )
                await s.flush()
        return True
    except IntegrityError:
        return False


def audit_alert_key(seq: int | None, event_id: int | None, reason: str) -> str:
    """One key per break of a chain: the same break found again is not a new alert."""
    digest = hashlib.sha256(f"{seq}:{event_id}:{reason}".encode()).hexdigest()[:32]
    return f"audit-failed:{digest}"


async def record_audit_failure(
    db: Database, tenant_id: str, seq: int | None, event_id: int | None, reason: str
) -> bool:
    """Record that ``tenant_id``'s audit chain does not hold (outside the chain, which
    refuses new events once broken); ``False`` when this break was recorded before."""
    where = "its start" if seq is None else f"event {seq}"
    return await record_alert(
        db,
        tenant_id,
        "audit_failed",
        audit_alert_key(seq, event_id, reason),
        "Audit verification failed",
        f"The audit chain of tenant {tenant_id} does not hold at {where}: {reason}",
        {"tenant": tenant_id, "seq": "" if seq is None else str(seq), "reason": reason[:200]},
    )
