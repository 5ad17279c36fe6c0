"""Finding 8, SSO: the public login route must not tell open loopback ports from closed
ones. Here the operator allows loopback (the worst case: by default the issuer would be
refused when saved, see test_egress_ssrf.py), and an anonymous browser starts logins
through IdPs whose issuers are an open port that is no IdP, a closed port, and a port that
accepts but never answers: every login fails the same way, after the same time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from musubi.sso.oidc import _HTTP_TIMEOUT
from tests.api.helpers import ok
from tests.conftest import Api, _free_port


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_login_failures_look_the_same_for_open_closed_and_silent_ports(
    api: Api, owner: httpx.AsyncClient, silent_port: int
) -> None:
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    open_port = int(api.base_url.rsplit(":", 1)[1])  # MUSUBI itself: open, but no IdP
    issuers = {
        "open": f"http://127.0.0.1:{open_port}",
        "closed": f"http://127.0.0.1:{_free_port()}",
        "silent": f"http://127.0.0.1:{silent_port}",
    }
    for name, issuer in issuers.items():
        body = {"name": name, "issuer": issuer, "client_id": "c", "client_secret": "s"}
        ok(await owner.post("/v1/sso/idps", json=body), 201)

    async def login(name: str) -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as anonymous:
            started = time.monotonic()
            r = await anonymous.get(f"/v1/sso/{tenant_id}/oidc/login", params={"idp": name})
            return r, time.monotonic() - started

    answers = await asyncio.gather(*(login(name) for name in issuers))
    shapes = {
        (r.status_code, r.json()["error"]["type"], r.json()["error"]["message"]) for r, _ in answers
    }
    assert len(shapes) == 1, shapes
    status, _, message = shapes.pop()
    assert status == 401 and "could not be read" in message
    for (_, elapsed), name in zip(answers, issuers, strict=True):
        assert _HTTP_TIMEOUT - 0.1 <= elapsed < _HTTP_TIMEOUT + 3, (name, elapsed)
