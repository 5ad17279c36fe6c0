"""Tables of the gateway: per-tenant provider credentials and routing configuration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["GatewayConfig", "ProviderCredential"]


class ProviderCredential(TenantScoped, Timestamps, Base):
    """An upstream endpoint of a tenant. ``secret`` is Fernet-encrypted JSON."""

    __tablename__ = "gateway_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pcr"))
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str] = mapped_column(String(500), default="")
    secret: Mapped[str] = mapped_column(Text, default="")
    key_hint: Mapped[str] = mapped_column(String(16), default="")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    weight: Mapped[float] = mapped_column(default=1.0)


class GatewayConfig(TenantScoped, Timestamps, Base):
    """A tenant's router configuration (aliases, tasks, fallbacks…), one row per tenant."""

    __tablename__ = "gateway_configs"

    tenant_id: Mapped[str] = tenant_column(primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
