"""SSO: per-tenant identity providers and policy, the OIDC login, sessions, logout.

Login and callback are public (a browser arrives with no credentials) and addressed by
tenant (``/v1/sso/{tenant}/oidc/...``, tenant id or name). Everything else needs a key or
a session like any route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select, true

from musubi.api.deps import Ctx, actor_for, app_state, require
from musubi.api.schemas import Out, Page, Patch
from musubi.audit.service import record
from musubi.context import bind_actor, bind_tenant, system_scope
from musubi.errors import InvalidInput, NotFound
from musubi.identity.sign_in import IdpConfig
from musubi.sso import idps, login, saml, saml_login, sessions
from musubi.sso.errors import LoginRejected, UnsafeRedirect
from musubi.sso.mapping import MappingConfig
from musubi.sso.saml import SamlSettings
from musubi.storage.tenants import Tenant

router = APIRouter(prefix="/v1/sso", tags=["sso"])

STATE_COOKIE = "musubi_sso_state"
LOGIN_PATH = "/v1/sso/{tenant}/oidc/login"
CALLBACK_PATH = "/v1/sso/{tenant}/oidc/callback"


class IdpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    protocol: str = "oidc"
    issuer: str = Field(min_length=1, max_length=1000)
    client_id: str = Field(default="", max_length=400)
    client_secret: str = Field(default="", max_length=2000)
    scopes: list[str] | None = None
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    saml: SamlSettings | None = Field(default=None, description="protocol saml only")


class IdpPatch(Patch):
    nullable = frozenset({"scopes", "mapping", "saml"})
    issuer: str | None = Field(default=None, max_length=1000)
    client_id: str | None = Field(default=None, max_length=400)
    client_secret: str | None = Field(default=None, max_length=2000)
    scopes: list[str] | None = None
    mapping: MappingConfig | None = None
    saml: SamlSettings | None = None
    enabled: bool | None = None


class IdpOut(Out):
    id: str
    tenant_id: str
    name: str
    protocol: str
    issuer: str
    client_id: str
    scopes: list[str]
    mapping: dict[str, Any]
    saml: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    require_sso: bool | None = Field(
        default=None, description="Refuse human users' API keys; needs an enabled IdP"
    )
    scim_manages_owners: bool | None = Field(
        default=None, description="Let SCIM change, disable and delete owners (default off)"
    )
    idle_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    absolute_hours: int | None = Field(default=None, ge=1, le=24 * 90)


class PolicyOut(Out):
    tenant_id: str
    require_sso: bool
    scim_manages_owners: bool
    idle_minutes: int
    absolute_hours: int


class SessionOut(Out):
    id: str
    user_id: str
    idp_id: str | None
    client_ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def runtime(request: Request) -> login.SsoRuntime:
    found = getattr(request.app.state, "sso_runtime", None)
    if found is None:
        found = request.app.state.sso_runtime = login.SsoRuntime(app_state(request).settings)
    assert isinstance(found, login.SsoRuntime)
    return found


def _public_base(request: Request) -> str:
    return app_state(request).settings.public_url or str(request.base_url)


def _callback_url(request: Request, tenant_id: str) -> str:
    return _public_base(request).rstrip("/") + CALLBACK_PATH.format(tenant=tenant_id)


# -- configuration -----------------------------------------------------------------------


@router.get("/idps", summary="List the tenant's identity providers")
async def list_idps(ctx: Annotated[Ctx, Depends(require("sso:read", "tenant"))]) -> Page[IdpOut]:
    ctx.check("sso:read")
    async with ctx.db.read() as s:
        return Page(items=[IdpOut.model_validate(i) for i in await idps.list_idps(s)])


@router.post("/idps", status_code=status.HTTP_201_CREATED, summary="Add an identity provider")
async def create_idp(
    body: IdpIn, request: Request, ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))]
) -> IdpOut:
    ctx.check("sso:write")
    async with ctx.db.transaction() as s:
        idp = await idps.create_idp(
            s,
            runtime(request).box,
            name=body.name,
            protocol=body.protocol,
            issuer=body.issuer,
            client_id=body.client_id,
            client_secret=body.client_secret,
            scopes=body.scopes,
            mapping=body.mapping.model_dump(),
            saml=body.saml.model_dump() if body.saml else None,
            egress=runtime(request).egress(ctx.tenant_id),
        )
    return IdpOut.model_validate(idp)


@router.get("/idps/{idp_id}", summary="Show an identity provider (never its secret)")
async def get_idp(
    idp_id: str, ctx: Annotated[Ctx, Depends(require("sso:read", "tenant"))]
) -> IdpOut:
    ctx.check("sso:read")
    async with ctx.db.read() as s:
        return IdpOut.model_validate(await idps.get_idp(s, idp_id))


@router.patch("/idps/{idp_id}", summary="Change an identity provider")
async def update_idp(
    idp_id: str,
    body: IdpPatch,
    request: Request,
    ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))],
) -> IdpOut:
    ctx.check("sso:write")
    changes = body.model_dump(exclude_unset=True)
    async with ctx.db.transaction() as s:
        sso = runtime(request)
        idp = await idps.update_idp(s, sso.box, idp_id, changes, sso.egress(ctx.tenant_id))
    return IdpOut.model_validate(idp)


@router.delete("/idps/{idp_id}", status_code=204, summary="Remove an identity provider")
async def delete_idp(
    idp_id: str, ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))]
) -> None:
    ctx.check("sso:write")
    async with ctx.db.transaction() as s:
        await idps.delete_idp(s, idp_id)


@router.post("/idps/{idp_id}/test-login", summary="Start a test login (creates nothing)")
async def test_login(
    idp_id: str, request: Request, ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))]
) -> dict[str, str]:
    """Open the returned URL in a browser and log in: the callback then shows what the
    IdP sent and how it maps, without creating users, roles or a session."""
    ctx.check("sso:write")
    async with ctx.db.read() as s:
        found = await idps.get_idp(s, idp_id)
    if found.protocol == "oidc":  # fetched outside the transaction (see oidc_login)
        await runtime(request).client(found).metadata()
    async with ctx.db.transaction() as s:
        idp = await idps.get_idp(s, idp_id)
        if idp.protocol == "saml":
            sp = saml.sp_endpoints(_public_base(request), ctx.tenant_id)
            url = await saml_login.start(s, sp, idp, return_to="/", test_only=True)
            return {"authorization_url": url}
        url, _ = await login.start(
            s,
            runtime(request),
            idp,
            redirect_uri=_callback_url(request, ctx.tenant_id),
            return_to="/",
            test_only=True,
        )
    return {"authorization_url": url}


@router.get("/policy", summary="The tenant's SSO policy")
async def get_policy(ctx: Annotated[Ctx, Depends(require("sso:read", "tenant"))]) -> PolicyOut:
    ctx.check("sso:read")
    async with ctx.db.read() as s:
        return PolicyOut.model_validate(await sessions.get_policy(s))


@router.put("/policy", summary="Change the SSO policy (require SSO, session lifetimes)")
async def put_policy(
    body: PolicyIn, ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))]
) -> PolicyOut:
    ctx.check("sso:write")
    async with ctx.db.transaction() as s:
        policy = await idps.set_policy(s, body.model_dump(exclude_none=True))
    ctx.auth.invalidate(ctx.tenant_id)
    return PolicyOut.model_validate(policy)


@router.get("/sessions", summary="Active browser sessions of the tenant")
async def list_sessions(
    ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))],
) -> Page[SessionOut]:
    ctx.check("sso:write")
    async with ctx.db.read() as s:
        return Page(items=[SessionOut.model_validate(r) for r in await sessions.list_sessions(s)])


@router.delete("/sessions/{session_id}", status_code=204, summary="Revoke a session")
async def revoke_session(
    session_id: str, ctx: Annotated[Ctx, Depends(require("sso:write", "tenant"))]
) -> None:
    ctx.check("sso:write")
    async with ctx.db.transaction() as s:
        await sessions.revoke_session(s, session_id, reason="revoked by an admin")
    ctx.auth.invalidate(ctx.tenant_id)


@router.post("/logout", summary="End the calling browser session")
async def logout(request: Request, ctx: Annotated[Ctx, Depends(require(None, "own"))]) -> Response:
    actor = ctx.principal.actor
    if actor.startswith("session:"):
        async with ctx.db.transaction() as s:
            await sessions.revoke_session(s, actor.split(":", 1)[1], reason="logout")
        ctx.auth.invalidate(ctx.tenant_id)
    response = JSONResponse({"logged_out": True})
    sessions.clear_cookies(response)
    return response


# -- the browser login (public) ------------------------------------------------------------


async def _tenant_id(
    request: Request, tenant: str, protocol: str, *, any_by_id: bool = False
) -> str:
    """The tenant (by id or name) that has an enabled IdP of ``protocol``. An unknown
    tenant and one without such an IdP get the same answer from the same one query, so
    these public routes do not tell which tenant names exist. With ``any_by_id`` (the SP
    metadata, needed before the IdP is set up) a tenant given by its id is found anyway:
    an id is random, so knowing one is not learning it here."""
    with system_scope():
        async with app_state(request).db.read() as s:
            with_idp = (
                select(IdpConfig.id)
                .where(
                    IdpConfig.tenant_id == Tenant.id,
                    IdpConfig.enabled.is_(True),
                    IdpConfig.protocol == protocol,
                )
                .exists()
            )
            found = await s.scalar(
                select(Tenant.id)
                .where(
                    or_(
                        and_(Tenant.id == tenant, true() if any_by_id else with_idp),
                        and_(Tenant.name == tenant, with_idp),
                    )
                )
                .limit(1)
            )
    if found is None:
        raise NotFound(f"no {protocol.upper()} single sign-on for {tenant!r}")
    return found


async def _audit_rejection(request: Request, tenant_id: str, reason: str, message: str) -> None:
    async with app_state(request).db.transaction() as s:
        await record(
            s,
            "sso.login.rejected",
            tenant_id,
            outcome="denied",
            detail={"reason": reason, "message": message, "path": request.url.path},
        )


@router.get(LOGIN_PATH.removeprefix("/v1/sso"), summary="Start an SSO login (public)")
async def oidc_login(
    tenant: str,
    request: Request,
    idp: Annotated[str | None, Query(max_length=100)] = None,
    return_to: Annotated[str | None, Query(max_length=1000)] = None,
    redirect_uri: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    tenant_id = await _tenant_id(request, tenant, "oidc")
    callback = _callback_url(request, tenant_id)
    with bind_tenant(tenant_id), bind_actor(actor_for(request, "anonymous")):
        try:
            if redirect_uri is not None and redirect_uri != callback:
                raise UnsafeRedirect("redirect_uri", redirect_uri)
            login.safe_return_to(return_to)
        except UnsafeRedirect as exc:
            await _audit_rejection(request, tenant_id, "open_redirect", exc.message)
            raise
        async with app_state(request).db.read() as s:
            found = await idps.enabled_idp(s, "oidc", idp)
        if found is None:
            raise InvalidInput("no enabled identity provider of that name", field="idp")
        # Discovery is fetched before the transaction: a slow or failing IdP must not hold
        # a database write (on SQLite, every writer of the server) while it is awaited.
        await runtime(request).client(found).metadata()
        async with app_state(request).db.transaction() as s:
            url, state = await login.start(
                s, runtime(request), found, redirect_uri=callback, return_to=return_to
            )
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(login.FLOW_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=callback.startswith("https://"),
        path="/v1/sso/",
    )
    return response


@router.get(CALLBACK_PATH.removeprefix("/v1/sso"), summary="OIDC redirect target (public)")
async def oidc_callback(
    tenant: str,
    request: Request,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    tenant_id = await _tenant_id(request, tenant, "oidc")
    st = app_state(request)
    with bind_tenant(tenant_id), bind_actor(actor_for(request, "anonymous")):
        try:
            result = await login.finish(
                st.db,
                runtime(request),
                state=state,
                cookie_state=request.cookies.get(STATE_COOKIE),
                code=code,
                error=error,
                client_ip=request.client.host if request.client else None,
            )
        except LoginRejected as exc:
            await _audit_rejection(request, tenant_id, exc.reason, exc.message)
            raise
    response: Response
    if result.test_only or result.token is None or result.csrf is None:
        response = JSONResponse(result.report())
    else:
        response = RedirectResponse(result.return_to, status_code=303)
        sessions.set_cookies(
            response,
            request,
            token=result.token,
            csrf=result.csrf,
            max_age=result.max_age,
            public_url=st.settings.public_url,
        )
    response.delete_cookie(STATE_COOKIE, path="/v1/sso/")
    return response
