"""What the server records about a project's index (the index itself lives on disk)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["KnowledgeIndexRecord"]


class KnowledgeIndexRecord(TenantScoped, Timestamps, Base):
    __tablename__ = "knowledge_indexes"
    __table_args__ = (UniqueConstraint("tenant_id", "project_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("kix"))
    tenant_id: Mapped[str] = tenant_column()
    project_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    embedder: Mapped[str] = mapped_column(String(100), default="")
    files: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    indexed_at: Mapped[datetime | None] = mapped_column(default=None)
    # background runs: queued -> running -> done | failed; resumed when the server restarts
    state: Mapped[str] = mapped_column(String(16), default="done", server_default="done")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    user_id: Mapped[str | None] = mapped_column(String(40), default=None)  # who asked
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor: Mapped[str | None] = mapped_column(String(200), default=None)
    requested_at: Mapped[datetime | None] = mapped_column(default=None)
