"""ASGI middleware: request ids, body size limit, metrics, JSON access log."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musubi.api.metrics import Metrics
from musubi.tenancy.context import request_scope

__all__ = ["RequestMiddleware"]

access_log = logging.getLogger("musubi.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics, max_file_bytes: int = 0
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_file = max(max_file_bytes, max_body_bytes)  # uploads to /v1/files
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, declared = "", None
        for name, value in scope["headers"]:  # the two headers read here, no dict per call
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        upload = scope["path"] == "/v1/files" and scope["method"] == "POST"
        limit = self.max_file if upload else self.max_body
        received = 0

        # Raised as Starlette's HTTPException: FastAPI passes that through its body parsing
        # (anything else becomes a 400); the error handlers turn it into PayloadTooLarge.
        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise HTTPException(413, f"request body is {declared} bytes; the limit is {limit}")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
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


def _route_path(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
