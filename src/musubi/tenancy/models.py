"""A tenant's teams and projects (the tenant row itself: :mod:`musubi.storage.tenants`)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["Project", "Team"]


class Team(TenantScoped, Timestamps, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("team"))
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")


class Project(TenantScoped, Timestamps, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("prj"))
    tenant_id: Mapped[str] = tenant_column()
    team_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    repo_path: Mapped[str | None] = mapped_column(String(1000), default=None)
    """The project's repository on the server, under ``<repos root>/<tenant id>/``."""
