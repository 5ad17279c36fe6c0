"""The OIDC login, start to finish: flow records, one-time codes, JIT users, role sync.

``start`` stores a login flow (hashed ``state``, ``nonce``, PKCE verifier) and returns the
IdP's authorization URL. ``finish`` consumes the flow and records the code as used in a
transaction of its own (a replayed code is refused even if the rest fails), checks the
``state`` against the cookie set at the start (so a login cannot be planted in someone
else's browser), exchanges and validates, then maps claims, creates or finds the user,
syncs roles, and opens a session - or, for a test login, only reports what would happen.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import RoleAssignment
from musubi.audit.service import record
from musubi.egress import EgressPolicy
from musubi.errors import InvalidInput, NotFound
from musubi.identity.models import User
from musubi.identity.owners import LastOwner
from musubi.identity.roles import assign_role, unassign_role
from musubi.identity.service import create_user
from musubi.identity.sign_in import IdpConfig
from musubi.settings import Settings
from musubi.sso.errors import LoginRejected, UnsafeRedirect
from musubi.sso.mapping import Grant, MappedIdentity, MappingConfig, managed_grants, map_claims
from musubi.sso.models import ExternalIdentity, LoginFlow, ReplayRecord
from musubi.sso.oidc import OidcClient
from musubi.sso.secretbox import SecretBox, load_secret_box
from musubi.sso.sessions import create_session, get_policy
from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["LoginResult", "SsoRuntime", "apply_identity", "finish", "safe_return_to", "start"]

FLOW_TTL = timedelta(minutes=10)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def safe_return_to(value: str | None) -> str:
    """A local path to land on after login; anything that could leave the site is refused."""
    if not value:
        return "/"
    bad = (
        not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(c in value for c in "\\\r\n\t")
        or ":" in value.split("?", 1)[0]
    )
    if bad:
        raise UnsafeRedirect("return_to", value)
    return value


class SsoRuntime:
    """What SSO keeps for the app's lifetime: the secret box and one client per IdP
    (so discovery and JWKS are fetched once, and refetched on key rotation)."""

    def __init__(self, settings: Settings, *, jwks_refresh_floor: float = 10.0) -> None:
        self.settings = settings
        self.box: SecretBox = load_secret_box(settings)
        self.jwks_refresh_floor = jwks_refresh_floor
        self._egress = settings.egress_rules
        self._clients: dict[tuple[str, str], OidcClient] = {}

    def egress(self, tenant_id: str) -> EgressPolicy:
        """Where this tenant's IdP fetches may go (the operator's MUSUBI_EGRESS_ALLOW)."""
        return self._egress.for_tenant(tenant_id)

    def client(self, idp: IdpConfig) -> OidcClient:
        version = (idp.id, f"{idp.issuer}|{idp.client_id}|{idp.updated_at.isoformat()}")
        found = self._clients.get(version)
        if found is None:
            found = OidcClient(
                idp.issuer,
                idp.client_id,
                self.box.open(idp.secret),
                jwks_refresh_floor=self.jwks_refresh_floor,
                egress=self.egress(idp.tenant_id),
            )
            self._clients = {k: v for k, v in self._clients.items() if k[0] != idp.id}
            self._clients[version] = found
        return found


async def start(
    session: AsyncSession,
    runtime: SsoRuntime,
    idp: IdpConfig,
    *,
    redirect_uri: str,
    return_to: str | None,
    test_only: bool = False,
) -> tuple[str, str]:
    """(authorization URL, state) for a new login through ``idp``."""
    if not idp.enabled:
        raise InvalidInput(f"identity provider {idp.name!r} is disabled", field="idp")
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    flow = LoginFlow(
        idp_id=idp.id,
        state_hash=_sha(state),
        nonce=nonce,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        return_to=safe_return_to(return_to),
        test_only=test_only,
        expires_at=utcnow() + FLOW_TTL,
    )
    session.add(flow)
    await session.flush()
    await record(session, "sso.login.start", idp.id, detail={"flow": flow.id, "test": test_only})
    url = await runtime.client(idp).authorization_url(
        redirect_uri=redirect_uri,
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        scopes=list(idp.scopes),
    )
    return url, state


@dataclass
class LoginResult:
    idp: IdpConfig
    mapped: MappedIdentity
    claims: dict[str, Any]
    return_to: str
    test_only: bool
    user_id: str | None = None
    created: bool = False
    token: str | None = None
    csrf: str | None = None
    max_age: int = 0
    notes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "idp": self.idp.name,
            "test_only": self.test_only,
            "claims": self.claims,
            "mapping": self.mapped.report(),
            "user_id": self.user_id,
            "created": self.created,
            "notes": self.notes,
        }


async def _consume(db: Database, state: str, code: str) -> tuple[LoginFlow, IdpConfig]:
    async with db.transaction() as session:
        flow = await session.scalar(select(LoginFlow).where(LoginFlow.state_hash == _sha(state)))
        if flow is None:
            raise LoginRejected("state", "unknown or already used login state")
        await session.delete(flow)
        if flow.expires_at <= utcnow():
            raise LoginRejected("state", "the login took too long; start again")
        idp = await session.get(IdpConfig, flow.idp_id)
        session.add(
            ReplayRecord(kind="oidc-code", value_hash=_sha(code), expires_at=utcnow() + FLOW_TTL)
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise LoginRejected("replay", "this authorization code was already used") from exc
    if idp is None:
        raise LoginRejected("state", "the identity provider of this login was removed")
    return flow, idp


async def finish(
    db: Database,
    runtime: SsoRuntime,
    *,
    state: str | None,
    cookie_state: str | None,
    code: str | None,
    error: str | None,
    client_ip: str | None,
) -> LoginResult:
    if error:
        raise LoginRejected("idp_error", f"the IdP answered {error!r}")
    if not state or not code:
        raise LoginRejected("code", "no authorization code or state in the callback")
    flow, idp = await _consume(db, state, code)
    # A real login must come back to the browser that started it (a test login, which
    # creates nothing, may be opened anywhere by the admin who started it).
    if not flow.test_only and not (cookie_state and hmac.compare_digest(state, cookie_state)):
        raise LoginRejected("state", "state does not match the login this browser started")
    client = runtime.client(idp)
    tokens = await client.exchange(
        code, redirect_uri=flow.redirect_uri, code_verifier=flow.code_verifier
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise LoginRejected("id_token", "the IdP returned no ID token")
    claims = await client.validate_id_token(id_token, nonce=flow.nonce)
    info = await client.userinfo(str(tokens.get("access_token", "")), claims["sub"])
    merged = {**info, **claims}
    config = MappingConfig.model_validate(idp.mapping)
    mapped = map_claims(merged, config)
    result = LoginResult(idp, mapped, merged, flow.return_to, flow.test_only)
    async with db.transaction() as session:
        await apply_identity(session, idp, config, result, client_ip)
    return result


async def apply_identity(
    session: AsyncSession,
    idp: IdpConfig,
    config: MappingConfig,
    result: LoginResult,
    client_ip: str | None,
) -> None:
    mapped = result.mapped
    link = await session.scalar(
        select(ExternalIdentity).where(
            ExternalIdentity.issuer == idp.issuer, ExternalIdentity.subject == mapped.subject
        )
    )
    user = await session.get(User, link.user_id) if link else None
    if user is None:
        user = await session.scalar(select(User).where(User.name == mapped.username))
        linked = user is not None and await session.scalar(
            select(ExternalIdentity.id).where(ExternalIdentity.user_id == user.id)
        )
        if user is not None and (linked or not config.link_existing or user.kind != "human"):
            raise LoginRejected(
                "username_taken",
                f"a user named {mapped.username!r} exists but is not linked to this identity",
            )
        if user is None and not config.jit:
            raise LoginRejected("no_user", "no MUSUBI user for this identity (JIT is off)")
    if user is not None and user.disabled:
        raise LoginRejected("disabled", "this user is disabled or deprovisioned")
    if result.test_only:
        result.user_id = user.id if user else None
        result.notes.append("test login: nothing was created or changed")
        return
    if user is None:
        user = await create_user(session, mapped.username, display_name=mapped.display_name)
        result.created = True
    if link is None:
        link = ExternalIdentity(user_id=user.id, issuer=idp.issuer, subject=mapped.subject)
        session.add(link)
    link.idp_id, link.email, link.last_claims = idp.id, mapped.email, result.claims
    link.last_login_at = utcnow()
    result.notes += await _sync_roles(session, user.id, config, mapped.grants)
    ses, result.token, result.csrf = await create_session(
        session, user.id, idp_id=idp.id, client_ip=client_ip
    )
    result.max_age = (await get_policy(session)).absolute_hours * 3600
    result.user_id = user.id
    await record(
        session,
        "sso.login",
        user.id,
        detail={"idp": idp.name, "subject": mapped.subject, "session": ses.id},
    )


async def _sync_roles(
    session: AsyncSession, user_id: str, config: MappingConfig, grants: list[Grant]
) -> list[str]:
    """Add the granted, remove the no-longer-granted among the assignments SSO owns."""
    notes = []
    owned = managed_grants(config)
    current = {
        Grant(a.role, a.scope, a.scope_id): a
        for a in (
            await session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user_id))
        ).all()
    }
    for grant, assignment in current.items():
        if grant in owned and grant not in grants:
            try:
                await unassign_role(session, assignment.id)
            except LastOwner as exc:  # the IdP stopped granting it: the last owner keeps it
                notes.append(f"kept role {grant.role!r}: {exc.message}")
    for grant in grants:
        if grant in current:
            continue
        try:
            await assign_role(
                session, user_id, grant.role, scope=grant.scope, scope_id=grant.scope_id
            )
        except (InvalidInput, NotFound) as exc:  # a rule naming a missing role or team
            notes.append(f"mapping rule skipped: {exc.message}")
    return notes
