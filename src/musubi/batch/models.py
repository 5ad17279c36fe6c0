"""Stored files (in parts, so no file is ever held whole in memory), batches, their lines,
and the jobs of the database queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, tenant_column, utcnow

__all__ = ["JOBS", "LINES", "Batch", "BatchJob", "BatchLine", "FilePart", "StoredFile"]


class StoredFile(TenantScoped, Base):
    __tablename__ = "files"

    tenant_id: Mapped[str] = tenant_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # whose it is (musubi.batch.ownership): the uploading key's project (None: the tenant)
    # and user; a batch's output files are the batch's. None on files older than 0009.
    project_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    user_id: Mapped[str | None] = mapped_column(String(40), default=None)


class FilePart(TenantScoped, Base):
    __tablename__ = "file_parts"

    file_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Batch(TenantScoped, Base):
    __tablename__ = "batches"

    tenant_id: Mapped[str] = tenant_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    output_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    completion_window: Mapped[str] = mapped_column(String(16), default="24h")
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int | None] = mapped_column(Integer, default=None)  # set once finished
    failed: Mapped[int | None] = mapped_column(Integer, default=None)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # who runs it: the creating key's identity, re-checked before every chunk
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    user_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str | None] = mapped_column(String(40), default=None)
    team_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    finalizing_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    failed_at: Mapped[datetime | None] = mapped_column(default=None)
    expired_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelling_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class BatchLine(TenantScoped, Base):
    """One request of a batch. ``status``: pending, succeeded, failed or cancelled; a line
    that has succeeded is never sent again (its key is ``<batch id>:<line>``)."""

    __tablename__ = "batch_lines"
    __table_args__ = (Index("ix_batch_lines_batch_status", "batch_id", "status"),)

    batch_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, as in the file
    custom_id: Mapped[str | None] = mapped_column(String(512), default=None)
    request: Mapped[str | None] = mapped_column(Text, default=None)  # the body, JSON
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response: Mapped[str | None] = mapped_column(Text, default=None)  # JSON
    error: Mapped[str | None] = mapped_column(Text, default=None)  # JSON {code, message}
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class BatchJob(TenantScoped, Base):
    """A range of a batch's lines, for the database queue: claimed with a lease that its
    worker renews; a job whose lease ran out (its process died) is claimed again."""

    __tablename__ = "batch_jobs"
    __table_args__ = (Index("ix_batch_jobs_claim", "status", "priority", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    first_line: Mapped[int] = mapped_column(Integer)
    last_line: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


LINES = cast(Table, BatchLine.__table__)  # for bulk (Core) inserts and updates
JOBS = cast(Table, BatchJob.__table__)
