"""The one place where errors become HTTP responses, and where refusals are audited.

Body shape, always: ``{"error": {"type", "message", "field"?, "request_id"}}``.
Security-relevant refusals (401, 403, 404 on an object id, 413, 422) append an audit
event in their own transaction, since no change is being made. A 404 on an id is the
same event whether or not the id is another tenant's; a real cross-tenant attempt goes
to the operator's log after the answer (:mod:`musubi.tenancy.crossing`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from musubi.access.principal import Principal
from musubi.api.deps import actor_for, app_state, bearer_token
from musubi.api.middleware import BodyRefused
from musubi.audit.service import record
from musubi.context import SYSTEM_TENANT, bind_actor, system_scope
from musubi.errors import (
    AuditIntegrityError,
    Conflict,
    InvalidInput,
    MissingExtra,
    MusubiError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PluginError,
    QuotaExceeded,
    Unauthenticated,
    UpstreamError,
    UpstreamTimeout,
)
from musubi.identity.auth import AuthFailure
from musubi.tenancy.crossing import NOT_FOUND, missing_object, record_if_cross_tenant

__all__ = ["audit_refusal", "cross_tenant_check", "install_error_handlers"]

log = logging.getLogger("musubi.api")

_STATUS: list[tuple[type[MusubiError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "permission_denied"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (InvalidInput, 422, "invalid_input"),
    (QuotaExceeded, 429, "rate_limit_exceeded"),
    (UpstreamTimeout, 504, "upstream_timeout"),
    (UpstreamError, 502, "upstream_error"),
    (AuditIntegrityError, 503, "audit_integrity"),
    (MissingExtra, 503, "missing_extra"),
    (PluginError, 500, "plugin_error"),
]


def error_body(request: Request, type_: str, message: str, **extra: Any) -> dict[str, Any]:
    body = {"type": type_, "message": message, **extra}
    body["request_id"] = getattr(request.state, "request_id", None)
    return {"error": body}


def _principal(request: Request) -> Principal | None:
    p = getattr(request.state, "principal", None)
    return p if isinstance(p, Principal) else None


async def _resolve_principal(request: Request) -> None:
    """For refusals raised before authentication (body too large or not JSON): find the
    caller's tenant if the key is valid, so the event lands in that tenant's log."""
    if _principal(request) is not None:
        return
    with contextlib.suppress(Unauthenticated):
        request.state.principal = await app_state(request).auth.authenticate(bearer_token(request))


async def audit_refusal(
    request: Request,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> None:
    """Append a security event for a refused request (its own transaction)."""
    state = app_state(request)
    principal = _principal(request)
    tenant = tenant_id or (principal.tenant_id if principal else SYSTEM_TENANT)
    actor = actor_for(request, principal.actor if principal else "anonymous")
    detail = {"method": request.method, "path": request.url.path, **(detail or {})}
    if principal is None:  # anyone can send these: counted, not an event per request
        await state.auth_failures.note(
            tenant,
            target,
            action,
            client_ip=actor.client_ip,
            request_id=actor.request_id,
            detail=detail,
            action=action,
        )
        return
    try:
        with system_scope(), bind_actor(actor):
            async with state.db.transaction() as session:
                await record(
                    session, action, target, outcome="denied", detail=detail, tenant_id=tenant
                )
    except AuditIntegrityError:
        # The request is refused either way; the broken chain is what needs attention.
        log.exception("refusal not audited: the tenant's audit chain does not verify")


def cross_tenant_check(request: Request, exc: NotFound) -> BackgroundTask | None:
    """After the answer: record a 404'd id that exists in another tenant in the operator's
    log (:mod:`musubi.tenancy.crossing`)."""
    principal, missing = _principal(request), missing_object(exc)
    if principal is None or missing is None:
        return None
    detail = {"method": request.method, "path": request.url.path}
    return BackgroundTask(
        record_if_cross_tenant,
        app_state(request).db,
        *missing,
        tenant_id=principal.tenant_id,
        actor=actor_for(request, principal.actor),
        detail=detail,
    )


async def _musubi_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MusubiError)
    status, type_ = next((s, t) for cls, s, t in _STATUS if isinstance(exc, cls))
    if status == 422 and _client_shape(request) is not None:
        status = 400  # what OpenAI and Anthropic answer to a malformed request
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput) and exc.field:
        extra["field"] = exc.field
    if isinstance(exc, Conflict) and exc.detail.get("field"):
        extra["field"] = exc.detail["field"]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    background = None
    if isinstance(exc, QuotaExceeded):
        headers = exc.headers
    if isinstance(exc, UpstreamError) and exc.detail.get("route"):
        headers = {"x-musubi-route": str(exc.detail["route"])}
    if isinstance(exc, AuthFailure):
        # Counted per source and window, not an event per request (anyone can send these).
        await app_state(request).auth_failures.note(
            exc.tenant_id or SYSTEM_TENANT,
            f"msk_{exc.prefix}" if exc.prefix else "",
            exc.reason,
            client_ip=request.client.host if request.client else None,
            request_id=getattr(request.state, "request_id", None),
            detail={"method": request.method, "path": request.url.path},
        )
    elif isinstance(exc, PermissionDenied):
        extra["permission"] = exc.permission
        await audit_refusal(request, "access.denied", detail={"permission": exc.permission})
    elif isinstance(exc, NotFound) and _principal(request) and missing_object(exc):
        # The same event whether or not the id is another tenant's (see tenancy.crossing).
        await audit_refusal(request, NOT_FOUND, str(exc.detail.get("id")))
        background = cross_tenant_check(request, exc)
    elif isinstance(exc, PayloadTooLarge | InvalidInput):
        await _resolve_principal(request)
        await audit_refusal(request, f"request.{type_}", detail={"message": exc.message})
    body = error_body(request, type_, exc.message, **extra)
    return _respond(request, body, status, headers, background)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        problems.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    await _resolve_principal(request)
    await audit_refusal(request, "request.invalid_input", detail={"problems": problems[:10]})
    body = error_body(request, "invalid_input", message, field=first["field"], problems=problems)
    return _respond(request, body, 400 if _client_shape(request) else 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyRefused):
        return await _musubi_error(request, exc.error)
    if exc.status_code == 413:
        return await _musubi_error(request, PayloadTooLarge(str(exc.detail)))
    if exc.status_code == 400:  # FastAPI: a body it could not decode at all
        return await _musubi_error(request, InvalidInput(f"body: {exc.detail}", field="body"))
    type_ = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = error_body(request, type_, str(exc.detail))
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return _respond(request, body, exc.status_code, headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's
    methods, though GET and POST of one path are often two routes)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path) and getattr(route, "methods", None):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception(
        "unhandled error", extra={"request_id": getattr(request.state, "request_id", None)}
    )
    body = error_body(request, "internal_error", "internal error; see the server log")
    return _respond(request, body, 500)


# The gateway's compatible routes answer in their client's own error format.
_OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models")
_ANTHROPIC_PATHS = ("/v1/messages",)
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}


def _client_shape(request: Request) -> str | None:
    path = request.url.path
    if path in _ANTHROPIC_PATHS or path.startswith("/v1/messages/"):
        return "anthropic"
    if path in _OPENAI_PATHS or path.startswith(("/v1/models/", "/v1/files", "/v1/batches")):
        return "openai"
    return None


def _respond(
    request: Request,
    body: dict[str, Any],
    status: int,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> JSONResponse:
    shape = _client_shape(request)
    err = body["error"]
    if shape == "openai":
        body = {
            "error": {
                "message": err["message"],
                "type": _OPENAI_TYPES.get(status, "api_error"),
                "param": err.get("field"),
                "code": "model_not_found"
                if status == 404 and "model" in err["message"]
                else err["type"],
            }
        }
    elif shape == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": err["message"]}}
    return JSONResponse(body, status, headers=headers, background=background)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MusubiError, _musubi_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
