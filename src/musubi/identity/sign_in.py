"""How people get in besides an API key: a tenant's identity providers, its SSO policy, and
browser sessions. All tenant-scoped (row-level security on PostgreSQL).

Authentication (:mod:`musubi.identity.auth`) and the owner rule (:mod:`musubi.identity.owners`)
read these rows, so they live in identity; the protocols that fill them (OIDC, SAML, SCIM,
login flows) are :mod:`musubi.sso`, above.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = ["IdpConfig", "SsoPolicy", "SsoSession"]


class IdpConfig(TenantScoped, Timestamps, Base):
    """One identity provider of a tenant. ``secret`` is encrypted (Fernet)."""

    __tablename__ = "sso_idps"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("idp"))
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(8), default="oidc")  # oidc | saml
    issuer: Mapped[str] = mapped_column(String(1000))
    client_id: Mapped[str] = mapped_column(String(400), default="")
    secret: Mapped[str] = mapped_column(String(4000), default="")  # encrypted client secret
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    mapping: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    saml: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # sso_url, certificates
    enabled: Mapped[bool] = mapped_column(default=True)


class SsoSession(TenantScoped, Timestamps, Base):
    """A browser session. Only SHA-256 hashes of the session and CSRF tokens are kept."""

    __tablename__ = "sso_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    tenant_id: Mapped[str] = tenant_column()
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    idp_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("sso_idps.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime]  # absolute expiry
    last_seen_at: Mapped[datetime]  # idle expiry counts from here
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)


class SsoPolicy(TenantScoped, Timestamps, Base):
    """The tenant's SSO policy (one row per tenant; absent means the defaults)."""

    __tablename__ = "sso_policies"

    tenant_id: Mapped[str] = tenant_column(primary_key=True)
    require_sso: Mapped[bool] = mapped_column(default=False)
    # SCIM may change, disable or delete owners only when this is on (off: owners are
    # managed in MUSUBI only, so an IdP's provisioning key cannot lock the tenant out).
    scim_manages_owners: Mapped[bool] = mapped_column(default=False)
    idle_minutes: Mapped[int] = mapped_column(default=60)
    absolute_hours: Mapped[int] = mapped_column(default=12)
