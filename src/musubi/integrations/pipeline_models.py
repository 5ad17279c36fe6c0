"""Tables of the pipelines: a project's configured pipelines (several per project, by
name) and the runs MUSUBI triggered on them, followed until they complete."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column, utcnow

__all__ = ["PipelineConfig", "PipelineRun"]


class PipelineConfig(TenantScoped, Timestamps, Base):
    """One pipeline of one project. ``secret`` is Fernet-encrypted JSON (``token``, and
    GitLab's ``trigger_token``), like a provider credential's."""

    __tablename__ = "integration_pipelines"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pip"))
    tenant_id: Mapped[str] = tenant_column()
    project_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("projects.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # a pipelines entry point: gitlab, …
    base_url: Mapped[str] = mapped_column(String(500))
    target: Mapped[str] = mapped_column(String(200))  # ADO project, GitLab project path
    pipeline: Mapped[str] = mapped_column(String(40), default="")  # ADO pipeline id
    ref: Mapped[str] = mapped_column(String(200), default="main")
    secret: Mapped[str] = mapped_column(Text, default="")
    key_hint: Mapped[str] = mapped_column(String(16), default="")
    enabled: Mapped[bool] = mapped_column(default=True)


class PipelineRun(TenantScoped, Base):
    """A run MUSUBI triggered. ``state`` is ``queued``/``running`` while followed,
    ``completed`` with its ``result``, or ``error`` when following it was refused
    (``error`` says why). ``run_id`` links an orchestrator run, whose events then show
    the result."""

    __tablename__ = "integration_pipeline_runs"
    __table_args__ = (Index("ix_integration_pipeline_runs_follow", "state", "next_check_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ppr"))
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    pipeline_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("integration_pipelines.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    external_id: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(200), default="")
    web_url: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[str | None] = mapped_column(String(16), default=None)
    vendor_status: Mapped[str] = mapped_column(String(40), default="")
    variables: Mapped[list[str]] = mapped_column(JSON, default=list)  # names only
    error: Mapped[str | None] = mapped_column(Text, default=None)
    checks: Mapped[int] = mapped_column(default=0)
    # a failed run's chat notice: claimed with a lease by one worker, then done
    notified: Mapped[bool] = mapped_column(default=False)
    notice_lease: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_check_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
