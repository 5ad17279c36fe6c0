"""One row per model call: who, which model, tokens, cost, latency, outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped

__all__ = ["UsageRow"]


class UsageRow(TenantScoped, Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_at", "tenant_id", "at"),)

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
