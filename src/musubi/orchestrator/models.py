"""Stored runs: a run, its steps (attempts, model, prompt hash, tokens, cost, output) and
its events, numbered in the order they happened (what ``GET /v1/runs/{id}/events`` replays).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, tenant_column, utcnow

__all__ = ["ACTIVE", "FINISHED", "Run", "RunEvent", "RunStep"]

# queued -> running -> (awaiting_approval -> queued ->) ... -> succeeded | failed | cancelled
ACTIVE = ("queued", "running", "awaiting_approval")
FINISHED = ("succeeded", "failed", "cancelled")


class Run(TenantScoped, Base):
    __tablename__ = "orchestrator_runs"
    __table_args__ = (Index("ix_orchestrator_runs_project_status", "project_id", "status"),)

    tenant_id: Mapped[str] = tenant_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("projects.id", ondelete="CASCADE")
    )
    idea: Mapped[str] = mapped_column(Text)
    feature: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(24), default="queued")
    auto_approve: Mapped[bool] = mapped_column(default=False)
    budget: Mapped[float | None] = mapped_column(Float, default=None)  # USD
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    models: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)  # step -> model
    max_output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)  # per answer
    cost: Mapped[float] = mapped_column(Float, default=0.0)  # spent so far
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # who runs it: the creating key's identity, re-checked before every step
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    user_id: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str | None] = mapped_column(String(40), default=None)
    key_project_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor: Mapped[str] = mapped_column(String(200))
    # the process driving it, until its lease (renewed while it works) runs out
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RunStep(TenantScoped, Base):
    """One stage of a run. A ``done`` step is final: a resumed run never calls it again."""

    __tablename__ = "orchestrator_run_steps"

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("orchestrator_runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # running, done, failed
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    prompt_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    output_path: Mapped[str | None] = mapped_column(String(500), default=None)
    output_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    base_sha: Mapped[str | None] = mapped_column(String(64), default=None)  # file before
    raw: Mapped[str | None] = mapped_column(Text, default=None)  # the last answer
    diagnostics: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RunEvent(TenantScoped, Base):
    __tablename__ = "orchestrator_run_events"

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("orchestrator_runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
