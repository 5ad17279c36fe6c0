"""Templates, the Content-Security-Policy, and how refusals look in a browser.

Every dashboard response carries a strict CSP: scripts and styles only from this origin
(no inline script, no ``eval``), nothing framed, forms posted only here. Data a chart
needs is embedded as ``<script type="application/json">``, which the browser never runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from musubi.errors import MusubiError, NotFound, PermissionDenied
from musubi.sso.sessions import CSRF_COOKIE

__all__ = ["CSP", "SecurityHeaders", "html", "install_handlers", "templates"]

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)
templates.filters["usd"] = lambda v: f"${float(v or 0):,.4f}"
templates.filters["pct"] = lambda v: f"{float(v or 0) * 100:.0f}%"


def html(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    body = templates.get_template(name).render(
        request=request, principal=principal, path=request.url.path, **context
    )
    return HTMLResponse(body, status_code=status)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["content-security-policy"] = CSP
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "same-origin"
        if not request.url.path.startswith("/ui/static/"):
            response.headers["cache-control"] = "no-store"
        return response


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def install_handlers(app: Any) -> None:
    from musubi.api.errors import audit_refusal
    from musubi.web.auth import LoginRequired

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        if _htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": exc.location})
        response = RedirectResponse(exc.location, status_code=303)
        response.delete_cookie(CSRF_COOKIE)
        return response

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PermissionDenied)
        await audit_refusal(request, "access.denied", detail={"permission": exc.permission})
        name = "fragment_error.html" if _htmx(request) else "denied.html"
        return html(request, name, 403, error=exc, permission=exc.permission)

    async def not_found(request: Request, exc: Exception) -> Response:
        name = "fragment_error.html" if _htmx(request) else "error.html"
        return html(request, name, 404, error=exc, title="Not found")

    async def other(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MusubiError)
        name = "fragment_error.html" if _htmx(request) else "error.html"
        return html(request, name, 400, error=exc, title="Cannot do that")

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PermissionDenied, denied)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(MusubiError, other)
