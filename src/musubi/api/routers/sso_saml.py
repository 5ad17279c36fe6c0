"""SAML 2.0 service provider routes, public and addressed by tenant (id or name) like the
OIDC ones: SP metadata, the HTTP-Redirect login and the HTTP-POST assertion consumer.

They take no key: a browser (or an IdP fetching metadata) arrives without one, and the
signed assertion is the credential. Every refused login is audited as
``sso.login.rejected``.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from musubi.api.deps import actor_for, app_state
from musubi.api.routers.sso import _audit_rejection, _public_base, _tenant_id
from musubi.context import bind_actor, bind_tenant
from musubi.errors import InvalidInput
from musubi.sso import idps, saml, saml_login, sessions
from musubi.sso.errors import LoginRejected, UnsafeRedirect
from musubi.sso.login import FLOW_TTL, safe_return_to

__all__ = ["ACS_PATH", "METADATA_PATH", "SAML_LOGIN_PATH", "router"]

FORM_TYPE = "application/x-www-form-urlencoded"
router = APIRouter(prefix="/v1/sso", tags=["sso"])

METADATA_PATH = "/v1/sso/{tenant}/saml/metadata"
SAML_LOGIN_PATH = "/v1/sso/{tenant}/saml/login"
ACS_PATH = "/v1/sso/{tenant}/saml/acs"
BINDING_COOKIE = "musubi_saml_flow"  # binds a login to the browser that started it


MAX_FORM = 1_000_000


async def _form(request: Request) -> tuple[str | None, str | None]:
    """``SAMLResponse`` and ``RelayState`` of an urlencoded form (no multipart needed)."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPE):
        raise InvalidInput(f"the assertion consumer takes {FORM_TYPE}", field="content-type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise InvalidInput("the SAML form is too large", field="SAMLResponse")
    fields = parse_qs(body.decode("latin-1"), max_num_fields=10)
    response, relay = fields.get("SAMLResponse", [None])[0], fields.get("RelayState", [None])[0]
    return response, relay


def _sp(request: Request, tenant_id: str) -> saml.SpEndpoints:
    return saml.sp_endpoints(_public_base(request), tenant_id)


@router.get(
    METADATA_PATH.removeprefix("/v1/sso"),
    summary="SAML SP metadata (public)",
    responses={200: {"content": {"application/samlmetadata+xml": {"schema": {"type": "string"}}}}},
)
async def saml_metadata(tenant: str, request: Request) -> Response:
    """Give this to the IdP: the SP entity id and the assertion consumer URL."""
    tenant_id = await _tenant_id(request, tenant, "saml", any_by_id=True)
    xml = await asyncio.to_thread(saml.sp_metadata, _sp(request, tenant_id))
    return Response(xml, media_type="application/samlmetadata+xml")


@router.get(SAML_LOGIN_PATH.removeprefix("/v1/sso"), summary="Start a SAML login (public)")
async def saml_login_start(
    tenant: str,
    request: Request,
    idp: Annotated[str | None, Query(max_length=100)] = None,
    return_to: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    tenant_id = await _tenant_id(request, tenant, "saml")
    with bind_tenant(tenant_id), bind_actor(actor_for(request, "anonymous")):
        try:
            safe_return_to(return_to)
        except UnsafeRedirect as exc:
            await _audit_rejection(request, tenant_id, "open_redirect", exc.message)
            raise
        async with app_state(request).db.transaction() as s:
            found = await idps.enabled_idp(s, "saml", idp)
            if found is None:
                raise InvalidInput("no enabled SAML identity provider of that name", field="idp")
            binding = secrets.token_urlsafe(24)
            url = await saml_login.start(
                s, _sp(request, tenant_id), found, return_to=return_to, binding=binding
            )
    response = RedirectResponse(url, status_code=302)
    # The IdP posts the response cross-site: over TLS the cookie is SameSite=None (so it
    # comes along) and Secure; over plain HTTP (development, loopback) no SameSite attribute
    # is set, which browsers treat as Lax but still send on a top-level POST made within
    # two minutes (Chrome) or always (Firefox).
    tls = _sp(request, tenant_id).acs_url.startswith("https://")
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        max_age=int(FLOW_TTL.total_seconds()),
        httponly=True,
        samesite="none" if tls else None,
        secure=tls,
        path="/v1/sso/",
    )
    return response


@router.post(ACS_PATH.removeprefix("/v1/sso"), summary="SAML assertion consumer (public)")
async def saml_acs(tenant: str, request: Request) -> Response:
    """The IdP's auto-posted form (``SAMLResponse``, ``RelayState``)."""
    tenant_id = await _tenant_id(request, tenant, "saml")
    saml_response, relay_state = await _form(request)
    st = app_state(request)
    with bind_tenant(tenant_id), bind_actor(actor_for(request, "anonymous")):
        try:
            result = await saml_login.finish(
                st.db,
                _sp(request, tenant_id),
                saml_response=saml_response,
                relay_state=relay_state,
                binding=request.cookies.get(BINDING_COOKIE),
                client_ip=request.client.host if request.client else None,
            )
        except UnsafeRedirect as exc:
            await _audit_rejection(request, tenant_id, "open_redirect", exc.message)
            raise
        except LoginRejected as exc:
            await _audit_rejection(request, tenant_id, exc.reason, exc.message)
            raise
    if result.test_only or result.token is None or result.csrf is None:
        return JSONResponse(result.report())
    response = RedirectResponse(result.return_to, status_code=303)
    sessions.set_cookies(
        response,
        request,
        token=result.token,
        csrf=result.csrf,
        max_age=result.max_age,
        public_url=st.settings.public_url,
    )
    response.delete_cookie(BINDING_COOKIE, path="/v1/sso/")
    return response
