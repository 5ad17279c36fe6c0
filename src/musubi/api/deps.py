"""Request dependencies: authenticate, bind the tenant and actor, check the permission.

Every route takes ``ctx: Ctx = Depends(require("<permission>", "<scope>"))`` and so
declares both what it needs and where (:data:`ROUTE_SCOPES`). A route without it is
refused by the route meta-tests: deny by default.

- ``tenant``: the route reads or changes tenant-wide settings or objects (provider
  credentials, users, roles, the SSO policy, the audit log…). The permission must be held
  on the tenant itself, by a key not restricted to a project; a team or project role is
  refused here, before the route runs.
- ``team`` / ``project``: the route acts on one team or project (named in the path or
  body) or lists them; it is entered with the permission held anywhere, and the route
  checks the object with :meth:`Ctx.check` (or filters what it lists).
- ``own``: the route acts on the caller's own things (its keys, its session, its model
  calls); acting on someone else's needs a tenant-level permission, checked in the route.

With no API key sent, a browser session cookie is accepted instead; a state-changing call
made with the cookie must pass the CSRF check (:func:`musubi.sso.sessions.check_csrf`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from musubi.access.principal import Principal
from musubi.context import Actor, bind_request
from musubi.errors import PermissionDenied
from musubi.identity.auth import Authenticator
from musubi.runtime import AppState
from musubi.sso.sessions import SAFE_METHODS, SESSION_COOKIE, check_csrf
from musubi.storage.database import Database

__all__ = ["ROUTE_SCOPES", "Ctx", "RouteScope", "app_state", "bearer_token", "require"]

RouteScope = Literal["tenant", "team", "project", "own"]
ROUTE_SCOPES: tuple[RouteScope, ...] = ("tenant", "team", "project", "own")


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.musubi
    return state


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


def actor_for(request: Request, name: str) -> Actor:
    client = request.client.host if request.client else None
    return Actor(name, request_id=request.state.request_id, client_ip=client)


@dataclass(frozen=True)
class Ctx:
    """The authenticated call: who, and the handles to work with."""

    principal: Principal
    state: AppState

    @property
    def db(self) -> Database:
        return self.state.db

    @property
    def auth(self) -> Authenticator:
        return self.state.auth

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    def check(
        self, perm: str, *, team_id: str | None = None, project_id: str | None = None
    ) -> None:
        if not self.principal.can(perm, team_id=team_id, project_id=project_id):
            raise PermissionDenied(perm)


class require:
    """A dependency that admits callers holding ``permission`` where ``scope`` says: on the
    tenant for ``tenant`` routes, anywhere for the others (which then check the object)."""

    def __init__(self, permission: str | None, scope: RouteScope) -> None:
        self.permission = permission  # None: any valid key (e.g. "who am I")
        self.scope = scope

    async def __call__(self, request: Request) -> Ctx:
        state = app_state(request)
        token, cookie = bearer_token(request), request.cookies.get(SESSION_COOKIE)
        if token is None and cookie:
            session = await state.auth.authenticate_session(cookie)
            principal = request.state.principal = session.principal
            if request.method not in SAFE_METHODS:
                check_csrf(request, session.csrf_hash, state.settings.public_url)
        else:
            principal = await state.auth.authenticate(token)
        request.state.principal = principal
        # A plain function, not a generator: FastAPI wraps generator dependencies in an
        # anyio cancel scope and exit stack per request (measured: a fifth of a gateway
        # call's CPU). The binding ends with the middleware's request_scope().
        bind_request(principal.tenant_id, actor_for(request, principal.actor))
        if self.permission is not None:
            if self.scope == "tenant":
                held = principal.can(self.permission)
            else:
                held = principal.holds_anywhere(self.permission)
            if not held:
                raise PermissionDenied(self.permission)
        return Ctx(principal, state)


def declared_permission(call: Callable[..., Any]) -> tuple[bool, str | None]:
    """(declared, permission) of a dependency: used by the route meta-tests."""
    if isinstance(call, require):
        return True, call.permission
    return False, None


def declared_scope(call: Callable[..., Any]) -> RouteScope | None:
    """The scope a dependency declares (None: not a :class:`require`): for the meta-tests."""
    return call.scope if isinstance(call, require) else None
