"""The MCP endpoint of ``musubi serve``: ``/mcp/``, streamable HTTP, with a MUSUBI key.

The key in ``Authorization: Bearer`` is checked before the MCP layer sees the request (401
otherwise); the tools (:mod:`musubi.api.mcp.tools`) then act as that key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from musubi.access.principal import Principal
from musubi.errors import Unauthenticated
from musubi.extras import install_command

if TYPE_CHECKING:
    from musubi.orchestrator.runner import Orchestrator
    from musubi.runtime import AppState

__all__ = ["KeyCheck", "McpMount", "principal_of"]


class KeyCheck:
    """ASGI middleware in front of the MCP app: no valid MUSUBI key, no MCP (401)."""

    def __init__(self, app: ASGIApp, state: Callable[[], AppState]) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await principal_of(Request(scope), self.state())
            except Unauthenticated as exc:
                body = {"error": {"type": "unauthenticated", "message": exc.message}}
                await JSONResponse(body, 401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class McpMount:
    """The ASGI app at ``/mcp``: the key check, then the MCP server, built on first use.

    The SDK takes about a second to import, so a server that never serves MCP never loads
    it. Its streamable-HTTP transport is stateless with JSON answers (any worker can serve
    any request); its session manager runs in a task until :meth:`close`. DNS-rebinding
    protection (Host checks) is off: every request must carry a MUSUBI key, never a cookie.
    """

    def __init__(self, state: Callable[[], AppState], orchestrator: Callable[[], Orchestrator]):
        self.state, self.orchestrator = state, orchestrator
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.guarded = KeyCheck(self._serve, state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.guarded(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    try:
                        self._app = await self._start()
                    except ModuleNotFoundError as exc:
                        if exc.name != "mcp" and not (exc.name or "").startswith("mcp."):
                            raise
                        message = f"the MCP server needs the mcp extra: {install_command('mcp')}"
                        body = {"error": {"type": "not_implemented", "message": message}}
                        await JSONResponse(body, 501)(scope, receive, send)
                        return
        await self._app(scope, receive, send)

    async def _start(self) -> ASGIApp:
        from mcp.server.transport_security import TransportSecuritySettings

        from musubi.api.mcp.tools import build_server

        server = build_server(self.state, self.orchestrator)
        app = server.streamable_http_app(
            streamable_http_path="/",
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        ready = asyncio.Event()

        async def hold() -> None:
            async with server.session_manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(hold())
        await ready.wait()
        return app

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


async def principal_of(request: Request, state: AppState) -> Principal:
    from musubi.api.deps import bearer_token

    return await state.auth.authenticate(bearer_token(request))
