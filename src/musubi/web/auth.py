"""Who may see a page: the permission of the API route behind it, a login by key.

A page declares the REST route it shows (``page("GET /v1/runs/{run_id}")``); when the
dashboard is built, :func:`bind_pages` copies that route's ``require(permission, scope)``
from the app's route table onto the page, so a page can never ask less than its API.
The dependency is a :class:`musubi.api.deps.require`: the same authentication (session
cookie, or a key), the same CSRF check on state-changing calls, the same scope rule.
What differs is only how a refusal looks: no session sends the browser to the login page
with the page remembered; a missing permission is shown, named (see ``pages.py``).

Logging in with a key opens an ordinary browser session (:mod:`musubi.sso.sessions`) of
the key's user. A key restricted to one project is refused there: the session would hold
the user's whole rights, more than the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from fastapi import Request
from fastapi.routing import APIRoute

from musubi.api.deps import (
    Ctx,
    RouteScope,
    actor_for,
    app_state,
    declared_permission,
    declared_scope,
    require,
)
from musubi.context import SYSTEM_TENANT, bind_actor, bind_tenant
from musubi.errors import InvalidInput, MusubiError, Unauthenticated
from musubi.identity.auth import AuthFailure
from musubi.sso import sessions
from musubi.sso.errors import UnsafeRedirect
from musubi.sso.login import safe_return_to

__all__ = ["LoginRequired", "PageRequire", "bind_pages", "login_with_key", "page", "safe_next"]

LOGIN_PATH = "/ui/login"


class LoginRequired(MusubiError):
    """No valid session: the browser goes to the login page, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__("log in to see this page")
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"{LOGIN_PATH}?next={quote(self.next_path, safe='/')}"


class PageRequire(require):
    """``require`` with the permission and scope of the API route ``backing``."""

    pages: list[PageRequire] = []

    def __init__(self, backing: str) -> None:
        super().__init__(None, "own")
        self.backing = backing
        self.bound = False
        PageRequire.pages.append(self)

    async def __call__(self, request: Request) -> Ctx:
        if not self.bound:
            raise MusubiError(f"page permission of {self.backing!r} was never bound")
        try:
            return await super().__call__(request)
        except Unauthenticated as exc:
            if request.method != "GET":
                raise
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(path) from exc


def page(backing: str) -> PageRequire:
    """The dependency of a page or action showing the API route ``"METHOD /path"``."""
    return PageRequire(backing)


def bind_pages(routes: Iterable[APIRoute], pages: Iterable[PageRequire]) -> None:
    """Give each page the permission and scope its API route declares."""
    table: dict[str, tuple[str | None, RouteScope]] = {}
    for route in routes:
        for dep in route.dependant.dependencies:
            if dep.call is None:
                continue
            declared, perm = declared_permission(dep.call)
            scope = declared_scope(dep.call)
            if declared and scope is not None:
                for method in route.methods or ():
                    table[f"{method} {route.path}"] = (perm, scope)
    for p in pages:
        if p.backing not in table:
            raise LookupError(f"a page shows {p.backing!r}, which is no API route")
        p.permission, p.scope = table[p.backing]
        p.bound = True


def safe_next(value: str | None) -> str:
    """Where to go after login: a dashboard path, never another site."""
    try:
        path = safe_return_to(value)
    except UnsafeRedirect:
        return "/ui/"
    return path if path.startswith("/ui/") else "/ui/"


async def login_with_key(request: Request, key: str) -> tuple[str, str, int]:
    """A new session for the key's user: (session token, CSRF token, max age in s)."""
    state = app_state(request)
    if not key.strip():
        raise InvalidInput("api_key: paste a MUSUBI API key (msk_…)", field="api_key")
    try:
        principal = await state.auth.authenticate(key.strip())
    except AuthFailure as exc:  # counted like a refused API call (see api/errors.py)
        await state.auth_failures.note(
            exc.tenant_id or SYSTEM_TENANT,
            f"msk_{exc.prefix}" if exc.prefix else "",
            exc.reason,
            client_ip=request.client.host if request.client else None,
            request_id=getattr(request.state, "request_id", None),
            detail={"method": request.method, "path": request.url.path},
        )
        raise InvalidInput(f"api_key: {exc.message}", field="api_key") from exc
    if principal.project_id is not None:
        raise InvalidInput(
            "api_key: this key is restricted to one project; log in with an unrestricted "
            "key of your user, or with single sign-on",
            field="api_key",
        )
    with bind_tenant(principal.tenant_id), bind_actor(actor_for(request, principal.actor)):
        async with state.db.transaction() as s:
            policy = await sessions.get_policy(s)
            _, token, csrf = await sessions.create_session(
                s,
                principal.user_id,
                idp_id=None,
                client_ip=request.client.host if request.client else None,
            )
    return token, csrf, policy.absolute_hours * 3600
