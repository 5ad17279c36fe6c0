"""SSO tables: identity providers, external identities, sessions, login flows, replay
records, the tenant's SSO policy, and SCIM groups. All tenant-scoped (row-level security
on PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id

__all__ = [
    "ExternalIdentity",
    "IdpConfig",
    "LoginFlow",
    "ReplayRecord",
    "ScimGroup",
    "ScimMember",
    "SsoPolicy",
    "SsoSession",
]


def _tenant_fk() -> Mapped[str]:
    return mapped_column(String(40), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


class IdpConfig(TenantScoped, Timestamps, Base):
    """One identity provider of a tenant. ``secret`` is encrypted (Fernet)."""

    __tablename__ = "sso_idps"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("idp"))
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(8), default="oidc")  # oidc | saml
    issuer: Mapped[str] = mapped_column(String(1000))
    client_id: Mapped[str] = mapped_column(String(400), default="")
    secret: Mapped[str] = mapped_column(String(4000), default="")  # encrypted client secret
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    mapping: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    saml: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # sso_url, certificates
    enabled: Mapped[bool] = mapped_column(default=True)


class ExternalIdentity(TenantScoped, Timestamps, Base):
    """A user's identity at an IdP, keyed on issuer + subject (never on e-mail)."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "issuer", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("xid"))
    tenant_id: Mapped[str] = _tenant_fk()
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    idp_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("sso_idps.id", ondelete="SET NULL")
    )
    issuer: Mapped[str] = mapped_column(String(1000))
    subject: Mapped[str] = mapped_column(String(400))
    email: Mapped[str] = mapped_column(String(400), default="")
    last_claims: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class SsoSession(TenantScoped, Timestamps, Base):
    """A browser session. Only SHA-256 hashes of the session and CSRF tokens are kept."""

    __tablename__ = "sso_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    tenant_id: Mapped[str] = _tenant_fk()
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


class LoginFlow(TenantScoped, Timestamps, Base):
    """A login in progress: ``state`` (hashed), nonce, PKCE verifier; used once."""

    __tablename__ = "sso_login_flows"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("flow"))
    tenant_id: Mapped[str] = _tenant_fk()
    idp_id: Mapped[str] = mapped_column(String(40), ForeignKey("sso_idps.id", ondelete="CASCADE"))
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(200))
    code_verifier: Mapped[str] = mapped_column(String(200))
    redirect_uri: Mapped[str] = mapped_column(String(1000))
    return_to: Mapped[str] = mapped_column(String(1000), default="/")
    test_only: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime]


class ReplayRecord(TenantScoped, Base):
    """A one-time value already used: an OIDC code or a SAML assertion id (hashed)."""

    __tablename__ = "sso_replays"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value_hash"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rpl"))
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(16))  # oidc-code | saml-assertion
    value_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class SsoPolicy(TenantScoped, Timestamps, Base):
    """The tenant's SSO policy (one row per tenant; absent means the defaults)."""

    __tablename__ = "sso_policies"

    tenant_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    require_sso: Mapped[bool] = mapped_column(default=False)
    # SCIM may change, disable or delete owners only when this is on (off: owners are
    # managed in MUSUBI only, so an IdP's provisioning key cannot lock the tenant out).
    scim_manages_owners: Mapped[bool] = mapped_column(default=False)
    idle_minutes: Mapped[int] = mapped_column(default=60)
    absolute_hours: Mapped[int] = mapped_column(default=12)


class ScimGroup(TenantScoped, Timestamps, Base):
    __tablename__ = "scim_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "display_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("grp"))
    tenant_id: Mapped[str] = _tenant_fk()
    display_name: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400), default=None)


class ScimMember(TenantScoped, Base):
    __tablename__ = "scim_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mem"))
    tenant_id: Mapped[str] = _tenant_fk()
    group_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("scim_groups.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
