"""The SAML login: AuthnRequest flows, assertion checks, replay records, then the same
user, role and session handling as the OIDC login (:func:`musubi.sso.login.apply_identity`).

``start`` stores a login flow keyed on the AuthnRequest id (hashed) and returns the IdP's
HTTP-Redirect URL; ``RelayState`` carries the local path to land on. ``finish`` refuses a
``RelayState`` that is not a local path, an assertion id already used, a response whose
``InResponseTo`` is not a pending flow of this tenant, and one posted by another browser
than the one that started the flow; then pysaml2 verifies it, and the flow is consumed and
the assertion id recorded in a transaction of their own (so a replay is refused even if
the rest fails).

Browser binding (against login CSRF, where an attacker has the victim's browser post the
attacker's own response and so signs the victim into the attacker's account): ``start``
takes a random ``binding`` that the route also sets as a cookie, and stores its hash in the
flow's ``nonce`` column (unused by SAML otherwise); ``finish`` wants that cookie back. The
IdP posts cross-site, so the route sets it ``SameSite=None; Secure`` over TLS. Test logins
(started through the API, opened in any browser, creating nothing) are not bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.errors import InvalidInput
from musubi.identity.sign_in import IdpConfig
from musubi.sso import saml
from musubi.sso.errors import LoginRejected, UnsafeRedirect
from musubi.sso.login import FLOW_TTL, LoginResult, apply_identity, safe_return_to
from musubi.sso.mapping import MappingConfig, map_claims
from musubi.sso.models import LoginFlow, ReplayRecord
from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["REPLAY_TTL", "finish", "settings_of", "start"]

REPLAY_TTL = timedelta(hours=24)  # longer than any assertion we accept stays valid


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def settings_of(idp: IdpConfig) -> saml.SamlSettings:
    return saml.SamlSettings.model_validate(idp.saml)


async def start(
    session: AsyncSession,
    sp: saml.SpEndpoints,
    idp: IdpConfig,
    *,
    return_to: str | None,
    binding: str = "",
    test_only: bool = False,
) -> str:
    """The IdP URL (HTTP-Redirect binding) of a new login through ``idp``."""
    if not idp.enabled:
        raise InvalidInput(f"identity provider {idp.name!r} is disabled", field="idp")
    local = safe_return_to(return_to)
    request_id, url = await asyncio.to_thread(
        saml.authn_request, sp, idp.issuer, settings_of(idp), local
    )
    flow = LoginFlow(
        idp_id=idp.id,
        state_hash=_sha(request_id),
        nonce=_sha(binding) if binding else "",
        code_verifier="",
        redirect_uri=sp.acs_url,
        return_to=local,
        test_only=test_only,
        expires_at=utcnow() + FLOW_TTL,
    )
    session.add(flow)
    await session.flush()
    await record(
        session,
        "sso.login.start",
        idp.id,
        detail={"flow": flow.id, "test": test_only, "protocol": "saml"},
    )
    return url


async def _pending(db: Database, pre: saml.Precheck) -> tuple[LoginFlow, IdpConfig]:
    async with db.read() as s:
        used = await s.scalar(
            select(ReplayRecord.id).where(
                ReplayRecord.kind == "saml-assertion",
                ReplayRecord.value_hash == _sha(f"{pre.issuer}|{pre.assertion_id}"),
            )
        )
        if used is not None:
            raise LoginRejected("replay", "this assertion was already used")
        if not pre.in_response_to:
            raise LoginRejected("in_response_to", "IdP-initiated (unsolicited) logins are refused")
        flow = await s.scalar(
            select(LoginFlow).where(LoginFlow.state_hash == _sha(pre.in_response_to))
        )
        if flow is None:
            raise LoginRejected("in_response_to", "unknown or already used InResponseTo")
        idp = await s.get(IdpConfig, flow.idp_id)
    if flow.expires_at <= utcnow():
        raise LoginRejected("in_response_to", "the login took too long; start again")
    if idp is None or idp.protocol != "saml":
        raise LoginRejected("in_response_to", "the identity provider of this login was removed")
    return flow, idp


async def _consume(db: Database, flow_id: str, assertion: saml.SamlAssertion) -> None:
    async with db.transaction() as s:
        flow = await s.get(LoginFlow, flow_id)
        if flow is None:
            raise LoginRejected("in_response_to", "this login was already completed")
        await s.delete(flow)
        key = _sha(f"{assertion.issuer}|{assertion.assertion_id}")
        s.add(ReplayRecord(kind="saml-assertion", value_hash=key, expires_at=utcnow() + REPLAY_TTL))
        try:
            await s.flush()
        except IntegrityError as exc:
            raise LoginRejected("replay", "this assertion was already used") from exc


async def finish(
    db: Database,
    sp: saml.SpEndpoints,
    *,
    saml_response: str | None,
    relay_state: str | None,
    binding: str | None,
    client_ip: str | None,
) -> LoginResult:
    if relay_state:
        try:
            safe_return_to(relay_state)
        except UnsafeRedirect:
            raise UnsafeRedirect("RelayState", relay_state) from None
    if not saml_response:
        raise LoginRejected("malformed", "no SAMLResponse in the request")
    pre = saml.precheck(saml_response)
    flow, idp = await _pending(db, pre)
    if not flow.test_only and not (
        flow.nonce and binding and hmac.compare_digest(_sha(binding), flow.nonce)
    ):
        raise LoginRejected("browser", "this login was not started in this browser")
    assertion = await asyncio.to_thread(
        saml.validate, sp, idp.issuer, settings_of(idp), saml_response, pre.in_response_to
    )
    if assertion.issuer != idp.issuer:
        raise LoginRejected("issuer", f"the assertion's issuer {assertion.issuer!r} is not the IdP")
    await _consume(db, flow.id, assertion)
    claims: dict[str, object] = {**assertion.attributes, "sub": assertion.name_id}
    config = MappingConfig.model_validate(idp.mapping)
    result = LoginResult(idp, map_claims(claims, config), claims, flow.return_to, flow.test_only)
    async with db.transaction() as s:
        await apply_identity(s, idp, config, result, client_ip)
    return result
