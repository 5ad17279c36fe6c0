"""The tenant row: the root of tenant scoping.

Every :class:`~musubi.storage.base.TenantScoped` row points at one; the data layer
(:mod:`musubi.storage.scoping`) filters this table by ``id`` the way it filters the others by
``tenant_id``, and the audit log keeps one chain per tenant. It lives in storage, below
everything that reads it; creating and managing tenants is :mod:`musubi.tenancy.service`.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, Timestamps, new_id

__all__ = ["Tenant"]


class Tenant(Timestamps, Base):
    """An organisation. Filtered by ``id`` the way other rows are filtered by ``tenant_id``."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_root: Mapped[bool] = mapped_column(default=False)
    audit_retention_days: Mapped[int] = mapped_column(default=365)
