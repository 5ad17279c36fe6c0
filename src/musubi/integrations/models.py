"""Tables of the integrations: a project's trackers, the links between spec items and
issues, the outbox of changes to deliver, and the webhook deliveries already applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column, utcnow

__all__ = ["Integration", "IssueLink", "OutboxItem", "WebhookDelivery"]


class Integration(TenantScoped, Timestamps, Base):
    """One tracker of one project. ``secret`` is Fernet-encrypted JSON (token, email,
    webhook secret), like a provider credential's."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("project_id", "kind"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("int"))
    tenant_id: Mapped[str] = tenant_column()
    project_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("projects.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))  # a tracker's or chat notifier's name
    base_url: Mapped[str] = mapped_column(String(500))
    target: Mapped[str] = mapped_column(String(200))  # JIRA project key, GitHub owner/repo
    secret: Mapped[str] = mapped_column(Text, default="")
    key_hint: Mapped[str] = mapped_column(String(16), default="")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok | error
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class IssueLink(TenantScoped, Base):
    """A spec item and its issue. ``local_hash`` is the item as last in step with the
    tracker; ``remote`` the issue as last seen then: a change on both sides since is a
    conflict (``conflict`` holds both versions until someone resolves it)."""

    __tablename__ = "integration_links"
    __table_args__ = (UniqueConstraint("integration_id", "item_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("lnk"))
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    integration_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("integrations.id", ondelete="CASCADE")
    )
    item_id: Mapped[str] = mapped_column(String(100))
    issue_key: Mapped[str] = mapped_column(String(100))
    issue_url: Mapped[str] = mapped_column(String(500), default="")
    local_hash: Mapped[str] = mapped_column(String(64), default="")
    remote: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    conflict: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxItem(TenantScoped, Base):
    """A change to deliver to a tracker, written in the transaction that decided it.

    ``queued`` → ``running`` (leased) → ``done``; a retryable failure goes back to
    ``queued`` with a later ``next_at``; past the attempts, or on a refusal, ``parked``
    with its ``error``; ``conflict`` when the issue changed on both sides.
    """

    __tablename__ = "integration_outbox"
    __table_args__ = (Index("ix_integration_outbox_claim", "status", "next_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("obx"))
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    integration_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(TenantScoped, Base):
    """A webhook already applied, by the vendor's delivery id: a replay changes nothing."""

    __tablename__ = "integration_deliveries"

    integration_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
