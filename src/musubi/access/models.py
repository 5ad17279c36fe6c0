"""Custom roles and role assignments at tenant, team or project level."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["Role", "RoleAssignment"]


class Role(TenantScoped, Timestamps, Base):
    """A custom role: a named set of permissions, defined by one tenant."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("role"))
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(2000), default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class RoleAssignment(TenantScoped, Timestamps, Base):
    """``user`` holds ``role`` on ``scope`` (tenant, or one team or project)."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope", "scope_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ra"))
    tenant_id: Mapped[str] = tenant_column()
    user_id: Mapped[str] = mapped_column(String(40), ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(100))  # a built-in role name or a custom role's name
    scope: Mapped[str] = mapped_column(String(16), default="tenant")  # tenant | team | project
    scope_id: Mapped[str] = mapped_column(String(40), default="")  # "" for the tenant itself
