"""Quota policies: limits for one tenant, team, project or key."""

from __future__ import annotations

from sqlalchemy import Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["LIMITS", "QuotaPolicy"]

LIMITS = (
    "requests_per_minute",
    "tokens_per_minute",
    "tokens_per_day",
    "tokens_per_month",
    "cost_per_day",
    "cost_per_month",
)


class QuotaPolicy(TenantScoped, Timestamps, Base):
    """Limits of one scope; a limit left empty is not enforced."""

    __tablename__ = "quota_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "scope_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("quota"))
    tenant_id: Mapped[str] = tenant_column()
    scope: Mapped[str] = mapped_column(String(16))  # tenant | team | project | key
    scope_id: Mapped[str] = mapped_column(String(40), default="")
    requests_per_minute: Mapped[int | None] = mapped_column(default=None)
    tokens_per_minute: Mapped[int | None] = mapped_column(default=None)
    tokens_per_day: Mapped[int | None] = mapped_column(default=None)
    tokens_per_month: Mapped[int | None] = mapped_column(default=None)
    cost_per_day: Mapped[float | None] = mapped_column(Float, default=None)  # USD
    cost_per_month: Mapped[float | None] = mapped_column(Float, default=None)  # USD
