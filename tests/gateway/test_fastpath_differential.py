"""The fast path against FastAPI: the same requests, good, bad and refused, sent to an app
with the fast path and to one without (``create_app(..., fast_path=False)``, where every
call goes through FastAPI's routing, dependency solving and exception middleware), must
give the same status, headers and body. Each app has its own database with the same
owner key, and both call the same fake upstream, so the answers are comparable line by
line once the values that differ by nature (ids, timestamps) are masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI

from musubi.api.app import api_routes, create_app
from musubi.api.deps import require
from musubi.api.fastpath import eligible
from musubi.errors import PermissionDenied
from musubi.gateway.providers.base import Op, Provider
from musubi.settings import Settings
from tests.gateway.fakes import FakeUpstream

KEY = "msk_0a1b2c3d_" + "k" * 40
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
JSON = {"content-type": "application/json"}

# (what, method, path, headers, body): sent in this order to both apps
Case = tuple[str, str, str, dict[str, str], bytes]


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _auth(key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **JSON}


CASES: list[Case] = [
    ("good chat", "POST", "/v1/chat/completions", _auth(), _j(CHAT)),
    ("cache hit", "POST", "/v1/chat/completions", _auth(), _j(CHAT)),
    ("no cache", "POST", "/v1/chat/completions", {**_auth(), "x-musubi-cache": "no"}, _j(CHAT)),
    (
        "stream",
        "POST",
        "/v1/chat/completions",
        _auth(),
        _j({**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
    ),
    (
        "charset",
        "POST",
        "/v1/chat/completions",
        {**_auth(), "content-type": "application/json; charset=utf-8"},
        _j(CHAT),
    ),
    (
        "completion",
        "POST",
        "/v1/completions",
        _auth(),
        _j({"model": "gpt-4o-mini", "prompt": "hi"}),
    ),
    (
        "embeddings",
        "POST",
        "/v1/embeddings",
        _auth(),
        _j({"model": "text-embedding-3-small", "input": "hi"}),
    ),
    (
        "anthropic",
        "POST",
        "/v1/messages",
        _auth(),
        _j(
            {
                "model": "claude-3-5-haiku",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            }
        ),
    ),
    ("anthropic bad", "POST", "/v1/messages", _auth(), _j({"model": "claude-3-5-haiku"})),
    ("wrong key", "POST", "/v1/chat/completions", _auth("msk_0a1b2c3d_" + "x" * 40), _j(CHAT)),
    ("malformed key", "POST", "/v1/chat/completions", _auth("nope"), _j(CHAT)),
    ("no key", "POST", "/v1/chat/completions", JSON, _j(CHAT)),
    ("no messages", "POST", "/v1/chat/completions", _auth(), _j({"model": "gpt-4o-mini"})),
    ("bad count", "POST", "/v1/chat/completions", _auth(), _j({**CHAT, "max_tokens": "9"})),
    ("unknown model", "POST", "/v1/chat/completions", _auth(), _j({**CHAT, "model": "nope-1"})),
    ("bad json", "POST", "/v1/chat/completions", _auth(), b"{oops"),
    ("json array", "POST", "/v1/chat/completions", _auth(), b"[1, 2]"),
    ("empty body", "POST", "/v1/chat/completions", _auth(), b""),
    (
        "text/plain",
        "POST",
        "/v1/chat/completions",
        {**_auth(), "content-type": "text/plain"},
        b"hi",
    ),
    ("deep json", "POST", "/v1/chat/completions", _auth(), b"[" * 5000 + b"]" * 5000),
    ("huge int", "POST", "/v1/chat/completions", _auth(), _j({**CHAT, "n": 10**30})),
    (
        "oversized",
        "POST",
        "/v1/chat/completions",
        _auth(),
        _j({**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}),
    ),
    ("GET", "GET", "/v1/chat/completions", _auth(), b""),
    ("boom", "POST", "/v1/chat/completions", _auth(), _j({**CHAT, "model": "boom-1"})),
    ("quota", "POST", "/v1/chat/completions", {**_auth(), "x-musubi-cache": "no"}, _j(CHAT)),
    (
        "quota stream",
        "POST",
        "/v1/chat/completions",
        {**_auth(), "x-musubi-cache": "no"},
        _j({**CHAT, "stream": True}),
    ),
]
"""The last two are sent once the tenant's quota allows one request a minute."""

_VOLATILE = re.compile(
    rb'("(?:id|created|request_id|msg_id)": ?)("[^"]*"|\d+)|(chatcmpl|cmpl|msg)[-_][A-Za-z0-9]+'
    rb"|(retry after )\d+"
)
_HEADERS_VOLATILE = {
    "date",
    "content-length",  # follows the masked body
    "retry-after",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
}


def _mask(body: bytes) -> bytes:
    return _VOLATILE.sub(lambda m: (m.group(1) or m.group(4) or b"") + b"<v>", body)


class Boom(Provider):
    """A provider with a bug: an exception the app has no handler for but ``Exception``."""

    name: ClassVar[str] = "boom"
    needs_key: ClassVar[bool] = False

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        raise RuntimeError("a bug in a provider")


Outcome = tuple[str, int, dict[str, str], bytes] | tuple[str, str]


async def _run(
    app: FastAPI, upstream: str, cases: list[Case], prepare: Callable[[FastAPI], None] | None
) -> list[Outcome]:
    out: list[Outcome] = []
    async with app.router.lifespan_context(app):
        state = app.state.musubi
        assert state.gateway is not None
        state.gateway.registry.register(Boom)
        if prepare is not None:
            prepare(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://musubi") as c:
            for put, body in [
                (
                    "/v1/gateway/providers/up",
                    {
                        "provider": "openai",
                        "api_key": "sk-x-000000000001",
                        "base_url": f"{upstream}/v1",
                    },
                ),
                (
                    "/v1/gateway/providers/anth",
                    {"provider": "anthropic", "api_key": "sk-a-0000000001", "base_url": upstream},
                ),
                ("/v1/gateway/providers/boom", {"provider": "boom", "models": ["boom-1"]}),
            ]:
                r = await c.put(put, json=body, headers=_auth())
                assert r.status_code == 200, r.text
            for i, (what, method, path, headers, content) in enumerate(cases):
                if what == "quota":
                    limits = {"requests_per_minute": 1}
                    quota = {"scope": "tenant", "limits": limits}
                    r = await c.put("/v1/quotas", json=quota, headers=_auth())
                    assert r.status_code == 200, r.text
                headers = {**headers, "x-request-id": f"req-{i}"}
                try:
                    r = await c.request(method, path, headers=headers, content=content)
                except Exception as exc:  # what the server itself would see and log
                    out.append((what, f"raised {type(exc).__name__}: {exc}"))
                    continue
                kept = {k: v for k, v in r.headers.items() if k not in _HEADERS_VOLATILE}
                out.append((what, r.status_code, kept, _mask(r.content)))
    return out


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    from tests.gateway.fakes import serve

    async with serve(FakeUpstream(name="primary")) as url:
        yield url


def _settings(tmp_path: Path, name: str) -> Settings:
    return Settings(
        home=tmp_path / name,
        database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
        max_body_bytes=64 * 1024,
        bootstrap_key=KEY,
        auth_cache_seconds=0,  # the quota set mid-run applies at once
    )


async def _both(
    tmp_path: Path, upstream: str, prepare: Callable[[FastAPI], None] | None = None
) -> tuple[list[Outcome], list[Outcome]]:
    fast = await _run(create_app(_settings(tmp_path, "fast")), upstream, CASES, prepare)
    plain = create_app(_settings(tmp_path, "plain"), fast_path=False)
    return fast, await _run(plain, upstream, CASES, prepare)


async def test_the_fast_path_answers_as_fastapi_does(tmp_path: Path, upstream: str) -> None:
    fast, plain = await _both(tmp_path, upstream)
    statuses = {o[0]: o[1] for o in plain}
    # the cases cover what they say they do (on the plain FastAPI app)
    assert statuses["good chat"] == 200 and statuses["stream"] == 200
    assert statuses["wrong key"] == 401 and statuses["no messages"] == 400
    assert statuses["oversized"] == 413 and statuses["quota stream"] == 429
    assert statuses["GET"] == 405 and str(statuses["boom"]).startswith("raised RuntimeError")
    for f, p in zip(fast, plain, strict=True):
        assert f == p, f"{f[0]}: fast path {f[1:]} != FastAPI {p[1:]}"


async def test_dependency_overrides_apply_on_the_fast_path(tmp_path: Path, upstream: str) -> None:
    def refuse(app: FastAPI) -> None:
        async def nobody() -> None:
            raise PermissionDenied("models:use")

        for route in api_routes(app.routes):
            if eligible(route):  # the fast path's routes
                for dep in route.dependant.dependencies:
                    if isinstance(dep.call, require):
                        app.dependency_overrides[dep.call] = nobody

    fast, plain = await _both(tmp_path, upstream, refuse)
    # /v1/messages declares its dependency inline, evaluated again when its router is
    # included: the instance overridden here is not the one FastAPI solves for it.
    assert {o[0]: o[1] for o in plain if o[0] in ("good chat", "stream", "completion")} == {
        "good chat": 403,
        "stream": 403,
        "completion": 403,
    }
    for f, p in zip(fast, plain, strict=True):
        assert f == p, f"{f[0]}: fast path {f[1:]} != FastAPI {p[1:]}"
