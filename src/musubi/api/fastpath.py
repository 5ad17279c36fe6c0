"""The model-call routes without FastAPI's per-request machinery.

A gateway call's own work (auth from cache, routing, quota, the upstream call, the ledger
line) costs well under a millisecond of CPU; FastAPI's routing through the included
routers, its dependency solving and body validation added about half a millisecond more
(measured with cProfile under ``bench/gateway_bench.py``). For routes shaped like the
model-call routes (``POST``, no path or query parameters, one free-form JSON object body,
``request`` and one :class:`~musubi.api.deps.require` dependency, a Response returned)
this middleware calls the *same* endpoint with the *same* dependency and answers errors
with the *same* exception handlers. The FastAPI route stays the one definition (and the
OpenAPI entry); this only skips the generic machinery around it.

Anything unusual falls through to FastAPI unchanged: another content type, a body that
is not a JSON object (FastAPI then gives its usual validation error), any other route, and
every call while ``app.dependency_overrides`` holds anything. An error without a handler of
its own (a bug) propagates as it does from FastAPI's router. It must sit inside
:class:`~musubi.api.middleware.RequestMiddleware` (request ids, body limits, metrics), as
:func:`~musubi.api.app.create_app` adds it. ``tests/gateway/test_fastpath_differential.py``
sends the same requests, good, bad and refused, through both and compares the answers.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musubi.api.deps import require

__all__ = ["FastPath", "eligible"]

Handler = Callable[[Request, Exception], Any]  # Starlette allows sync and async handlers


@dataclass(frozen=True)
class _Route:
    route: APIRoute
    dependency: require
    ctx_name: str
    request_name: str | None


def eligible(route: APIRoute) -> _Route | None:
    """The route's parts if it has the model-call shape, else None."""
    d = route.dependant
    if route.methods != {"POST"} or "{" in route.path or d.call is None:
        return None
    if d.path_params or d.query_params or d.header_params or d.cookie_params:
        return None
    if [p.name for p in d.body_params] != ["body"] or len(d.dependencies) != 1:
        return None
    dep = d.dependencies[0]
    if not isinstance(dep.call, require) or dep.name is None or dep.dependencies:
        return None
    # The fast path calls the dependency with the request alone: it must take nothing else.
    if dep.path_params or dep.query_params or dep.header_params or dep.cookie_params:
        return None
    if dep.body_params or dep.request_param_name is None:
        return None
    returns = get_type_hints(d.call).get("return")
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        return None
    return _Route(route, dep.call, dep.name, d.request_param_name)


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[APIRoute],
        handlers: Mapping[Any, Handler],
        overrides: Mapping[Any, Any] | None = None,
    ) -> None:
        self.app = app
        self.handlers = handlers  # the app's own dict: handlers added later are seen
        self.overrides = overrides if overrides is not None else {}  # the app's own, too
        self.table = {r.route.path: r for r in map(eligible, routes) if r is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.table.get(scope["path"]) if scope["type"] == "http" else None
        # dependency_overrides (tests replacing the auth) are FastAPI's to apply: with any
        # set, every call takes FastAPI's path (a route's dependency instance may differ
        # from the one FastAPI solves, when annotations are evaluated again).
        if entry is None or self.overrides or scope["method"] != "POST" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            body = await _read_body(receive)  # an oversized body raises 413 here
        except Exception as exc:
            await self._answer_error(request, exc, send)
            return
        if body is None:
            return  # the client went away before sending its request
        replay = _replaying(body, receive)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):  # FastAPI words the 400/422 as usual
            await self.app(scope, replay, send)
            return
        scope["route"], scope["endpoint"] = entry.route, entry.route.endpoint
        request = Request(scope, replay)
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            kwargs: dict[str, Any] = {"body": payload}
            kwargs[entry.ctx_name] = await entry.dependency(request)
            if entry.request_name:
                kwargs[entry.request_name] = request
            response: Response = await entry.route.endpoint(**kwargs)
            await response(scope, replay, send_tracking)
        except Exception as exc:
            if started:
                raise
            await self._answer_error(request, exc, send)

    async def _answer_error(self, request: Request, exc: Exception, send: Send) -> None:
        """What Starlette's ExceptionMiddleware does: the app's handler for the class."""
        handler = self._handler(exc)
        if handler is None:
            raise exc
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        await response(request.scope, request.receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """As Starlette's ExceptionMiddleware looks one up: a handler for ``Exception`` (or
        500) is not its to call. Such an error propagates to ServerErrorMiddleware, which
        answers with that handler *and re-raises*, so the server logs the traceback."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            main: bytes = value.split(b";", 1)[0].strip().lower()
            return main == b"application/json"
    return False


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body out once, then waits on the real one
    (for a disconnect while a stream is sent)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
