"""SSO protocol tables: external identities, login flows, replay records, and SCIM groups.
All tenant-scoped (row-level security on PostgreSQL). The identity providers, the tenant's
SSO policy and browser sessions, which authentication reads, are
:mod:`musubi.identity.sign_in`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from musubi.storage.base import Base, TenantScoped, Timestamps, new_id, tenant_column

__all__ = [
    "ExternalIdentity",
    "LoginFlow",
    "ReplayRecord",
    "ScimGroup",
    "ScimMember",
]


class ExternalIdentity(TenantScoped, Timestamps, Base):
    """A user's identity at an IdP, keyed on issuer + subject (never on e-mail)."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "issuer", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("xid"))
    tenant_id: Mapped[str] = tenant_column()
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


class LoginFlow(TenantScoped, Timestamps, Base):
    """A login in progress: ``state`` (hashed), nonce, PKCE verifier; used once."""

    __tablename__ = "sso_login_flows"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("flow"))
    tenant_id: Mapped[str] = tenant_column()
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
    tenant_id: Mapped[str] = tenant_column()
    kind: Mapped[str] = mapped_column(String(16))  # oidc-code | saml-assertion
    value_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class ScimGroup(TenantScoped, Timestamps, Base):
    __tablename__ = "scim_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "display_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("grp"))
    tenant_id: Mapped[str] = tenant_column()
    display_name: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400), default=None)


class ScimMember(TenantScoped, Base):
    __tablename__ = "scim_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mem"))
    tenant_id: Mapped[str] = tenant_column()
    group_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("scim_groups.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
