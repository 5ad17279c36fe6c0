"""Audit events, the signed head of each tenant's chain, and retention anchors.

No foreign key to ``tenants``: the trail of a deleted tenant is kept until retention.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped

__all__ = ["AuditAnchor", "AuditEvent", "AuditHead"]


class AuditEvent(TenantScoped, Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_audit_events_tenant_at", "tenant_id", "at"),
    )

    # no index of its own: (tenant_id, seq) and (tenant_id, at) serve it (migration 0019)
    tenant_id: Mapped[str] = mapped_column(String(40))
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(TenantScoped, Base):
    """The last event of a tenant's chain, signed. Also the lock that orders appends.

    ``proof`` is empty when ``signature`` signs this head alone, else its inclusion proof
    in the batch of heads whose Merkle root ``signature`` signs (:mod:`musubi.audit.chain`).
    """

    __tablename__ = "audit_heads"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(16))
    proof: Mapped[str] = mapped_column(Text, default="", server_default="")


class AuditAnchor(TenantScoped, Base):
    """A signed (seq, hash) of the last event removed by retention; verify starts here."""

    __tablename__ = "audit_anchors"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
