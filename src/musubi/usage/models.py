"""One row per model call: who, which model, tokens, cost, latency, outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped

__all__ = ["UsageDay", "UsageRow"]


class UsageRow(TenantScoped, Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_at", "tenant_id", "at"),)

    # no index of its own: (tenant_id, at) serves it, and each tenant-prefixed index costs
    # every insert a page of its own when many tenants call (migration 0019)
    tenant_id: Mapped[str] = mapped_column(String(40))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # from the record: idempotent
    at: Mapped[datetime]
    team_id: Mapped[str | None] = mapped_column(String(40), default=None)
    project_id: Mapped[str | None] = mapped_column(String(40), default=None)
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    user_id: Mapped[str | None] = mapped_column(String(40), default=None)
    model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cached: Mapped[bool] = mapped_column(default=False)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(40), default="success")
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)


class UsageDay(TenantScoped, Base):
    """Usage of one closed day (UTC) per group of one dimension (``musubi.usage.rollup``).

    ``dim`` is model, team, project or key; ``grp`` the model name or the id ('' for
    none). A row with ``dim = 'done'`` marks the day as rolled up."""

    __tablename__ = "usage_days"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "dim", "day", "grp"),)

    dim: Mapped[str] = mapped_column(String(8))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    grp: Mapped[str] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(default=0)
    tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    cached: Mapped[int] = mapped_column(default=0)
