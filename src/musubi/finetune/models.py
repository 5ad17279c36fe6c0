"""Fine-tuning jobs, their events and checkpoints (tenant-scoped rows).

A job row is its own queue entry: ``musubi worker --queue finetune`` claims a ``queued``
job (or a ``running`` one whose lease ran out: its worker died) and renews ``lease_until``
while it trains. A succeeded job's adapter is a model of its tenant: ``fine_tuned_model``
is its name, ``adapter_path`` where the adapter lies, ``serving`` where it is served.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, tenant_column, utcnow

__all__ = ["TERMINAL", "FineTuneCheckpoint", "FineTuneEvent", "FineTuneJob"]

TERMINAL = ("succeeded", "failed", "cancelled")


class FineTuneJob(TenantScoped, Base):
    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_fine_tuning_jobs_status_lease", "status", "lease_until"),)

    tenant_id: Mapped[str] = tenant_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))  # the base model's name
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40), default=None)
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(24), default="validating_files")
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    method: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(300), default=None, index=True)
    trained_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    adapter_path: Mapped[str | None] = mapped_column(Text, default=None)
    base_path: Mapped[str | None] = mapped_column(Text, default=None)
    serving: Mapped[str | None] = mapped_column(Text, default=None)  # "local" or a vLLM URL
    # whose it is (musubi.batch.ownership rules, like files and batches)
    user_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    # the queue
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class FineTuneEvent(TenantScoped, Base):
    __tablename__ = "fine_tuning_events"

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)  # per job, increasing: the newest-first order
    level: Mapped[str] = mapped_column(String(8), default="info")
    type: Mapped[str] = mapped_column(String(8), default="message")  # message | metrics
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FineTuneCheckpoint(TenantScoped, Base):
    __tablename__ = "fine_tuning_checkpoints"

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
