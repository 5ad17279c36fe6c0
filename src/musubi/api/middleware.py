"""ASGI middleware: request ids, header and body size limits, JSON body checks, metrics,
JSON access log.

The JSON checks (:mod:`musubi.jsonbody`) run here, on the bytes as they arrive, so
that every parser behind this middleware (FastAPI's, the gateway's fast path, bulk import)
only ever sees a body that passed them.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musubi import jsonbody
from musubi.api.metrics import Metrics
from musubi.context import request_scope
from musubi.errors import MusubiError, PayloadTooLarge

__all__ = ["BodyRefused", "RequestMiddleware"]

access_log = logging.getLogger("musubi.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyRefused(HTTPException):
    """A body refused while the app reads it (too large, or a JSON body failing
    :func:`musubi.jsonbody.check`). A subclass of Starlette's HTTPException, because
    FastAPI lets that one through its body parsing (anything else becomes a vague 400);
    the error handlers answer ``error`` as if the route had raised it."""

    def __init__(self, error: MusubiError) -> None:
        super().__init__(413 if isinstance(error, PayloadTooLarge) else 422, error.message)
        self.error = error


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        max_file_bytes: int = 0,
        max_header_bytes: int = 65_536,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_file = max(max_file_bytes, max_body_bytes)  # uploads to /v1/files
        self.max_header = max_header_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, declared, media = "", None, b""
        header_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        for name, value in scope["headers"]:  # the headers read here, no dict per call
            header_bytes += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
            elif name == b"content-type":
                media = value
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        if header_bytes > self.max_header:
            await _headers_too_large(scope, send, request_id, header_bytes, self.max_header)
            return
        upload = scope["path"] == "/v1/files" and scope["method"] == "POST"
        limit = self.max_file if upload else self.max_body
        received = 0
        # JSON bodies are kept until complete and checked; an upload is multipart, and is
        # never parsed as JSON, so it is not held in memory here.
        chunks: list[bytes] | None = [] if _is_json(media) and not upload else None

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyRefused(
                    PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
                )
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise BodyRefused(
                        PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                    )
                if chunks is not None:
                    chunks.append(body)
                    if not message.get("more_body", False):
                        whole = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                        try:
                            jsonbody.check(whole)
                        except MusubiError as exc:
                            raise BodyRefused(exc) from None
            return message

        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        start = time.perf_counter()
        try:
            with request_scope():  # the caller bound by the route's dependency, until the end
                await self.app(scope, limited_receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_path(scope)
            self.metrics.observe(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):  # not built per call when it is off
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )


def _is_json(media: bytes) -> bool:
    """Whether a body of this Content-Type is parsed as JSON: FastAPI does so for none at
    all, ``application/json`` and ``application/*+json`` (SCIM's ``scim+json``)."""
    main = media.split(b";", 1)[0].strip().lower()
    return main in (b"", b"application/json") or (
        main.startswith(b"application/") and main.endswith(b"+json")
    )


async def _headers_too_large(
    scope: Scope, send: Send, request_id: str, size: int, limit: int
) -> None:
    """431, answered before the app runs (no route, no key check, nothing audited)."""
    message = f"request headers are {size} bytes; the limit is {limit}"
    body = {
        "error": {
            "type": "request_headers_too_large",
            "message": message,
            "request_id": request_id,
        }
    }
    response = JSONResponse(body, 431, headers={"x-request-id": request_id, "connection": "close"})
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _route_path(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
