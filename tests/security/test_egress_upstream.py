"""Finding 8, the rest: what an upstream the operator allowed can still not do.

An upstream (or whatever listens at an allowed address) cannot redirect the gateway
elsewhere, and its error bodies reach the caller only as a short summary. The server's own
connections (a detected Ollama) keep working under a policy that refuses loopback, and the
operator's exceptions apply to the tenants they name only.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from musubi.egress import EgressPolicy, EgressRules
from musubi.egress.clients import _accepted
from musubi.errors import UpstreamError
from musubi.gateway.providers.base import ClientPool, Credential
from musubi.gateway.providers.registry import ProviderRegistry
from tests.api.helpers import ok
from tests.conftest import _free_port
from tests.gateway.fakes import FakeUpstream, serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
SECRET_PAGE = "<html><body>internal admin console: root password hunter2</body></html>"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@asynccontextmanager
async def run(app: Starlette) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def misbehaving(target: str) -> Starlette:
    """An upstream that redirects, or answers errors with bodies it should not show."""

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{target}/v1/chat/completions", status_code=307)

    async def html(request: Request) -> Response:
        return HTMLResponse(SECRET_PAGE, status_code=500)

    async def json_error(request: Request) -> Response:
        err = {"type": "invalid_request_error", "message": "model\nnot\tfound", "extra": "x" * 999}
        return JSONResponse({"error": err}, status_code=404)

    async def other_json(request: Request) -> Response:
        return JSONResponse({"secrets": {"aws": "AKIA-SECRET"}}, status_code=503)

    return Starlette(
        routes=[
            Route("/redirect/v1/chat/completions", redirect, methods=["POST"]),
            Route("/html/v1/chat/completions", html, methods=["POST"]),
            Route("/json/v1/chat/completions", json_error, methods=["POST"]),
            Route("/other/v1/chat/completions", other_json, methods=["POST"]),
        ]
    )


async def call_through(owner: httpx.AsyncClient, base_url: str) -> httpx.Response:
    body = {"provider": "openai", "api_key": "sk-x-0001", "base_url": base_url}
    ok(await owner.put("/v1/gateway/providers/openai", json=body))
    return await owner.post("/v1/chat/completions", json=CHAT)


async def test_a_redirect_is_not_followed(owner: httpx.AsyncClient) -> None:
    internal = FakeUpstream(name="internal")
    async with serve(internal) as internal_url, run(misbehaving(internal_url)) as url:
        r = await call_through(owner, f"{url}/redirect/v1")
    assert r.status_code == 502, r.text
    assert "redirect" in r.json()["error"]["message"]
    assert internal.calls == 0


async def test_error_bodies_reach_the_caller_only_as_a_summary(owner: httpx.AsyncClient) -> None:
    async with run(misbehaving("")) as url:
        page = await call_through(owner, f"{url}/html/v1")
        other = await call_through(owner, f"{url}/other/v1")
        shaped = await call_through(owner, f"{url}/json/v1")
    assert page.status_code == 502
    assert "hunter2" not in page.text and "<html" not in page.text
    assert "not shown" in page.json()["error"]["message"]
    assert "AKIA-SECRET" not in other.text
    # A provider's own error shape keeps its type and message, on one line, short.
    message = shaped.json()["error"]["message"]
    assert "invalid_request_error: model not found" in message
    assert "xxx" not in message


async def test_the_servers_own_ollama_is_reached_under_a_policy_that_refuses_loopback() -> None:
    """The detected-Ollama credential is built by the server (trusted); a tenant's
    credential at the same address is refused when the connection opens."""
    fake = FakeUpstream(name="ollama")
    pool = ClientPool(egress=EgressPolicy())  # a fresh install: loopback refused
    registry = ProviderRegistry()
    async with serve(fake) as url:
        base = f"{url}/v1"
        server_side = Credential(
            name="ollama-local", provider="ollama", base_url=base, trusted=True
        )
        tenants = Credential(name="mine", provider="ollama", base_url=base)
        try:
            answer = await registry.build(server_side, pool).send("chat", CHAT, "llama3.2")
            with pytest.raises(UpstreamError, match="egress policy"):
                await registry.build(tenants, pool).send("chat", CHAT, "llama3.2")
        finally:
            await pool.close()
    assert answer["choices"][0]["message"]["content"]
    assert fake.calls == 1


async def test_the_operators_exceptions_apply_to_the_tenants_they_name() -> None:
    rules = EgressRules.parse("ten_gpu=10.1.0.0/16, gpu.corp.example, 192.168.7.7")
    gpu, other = rules.for_tenant("ten_gpu"), rules.for_tenant("ten_other")
    inside = ipaddress.ip_address("10.1.2.3")
    assert gpu.address_allowed("vllm", inside) and not other.address_allowed("vllm", inside)
    for policy in (gpu, other):  # the shared entries hold for everyone
        assert policy.address_allowed("x", ipaddress.ip_address("192.168.7.7"))
        assert policy.address_allowed("gpu.corp.example", ipaddress.ip_address("10.9.9.9"))
        assert not policy.address_allowed("x", ipaddress.ip_address("169.254.169.254"))
    with pytest.raises(ValueError, match="not an address"):
        EgressRules.parse("10.0.0.0/8, not a host!")
    # One connection pool per policy: a connection opened for one tenant's allowed
    # address is never reused for a tenant without that exception.
    pool = ClientPool()
    try:
        assert pool.get(gpu) is not pool.get(other)
        assert pool.get(other) is pool.get(rules.for_tenant("ten_third"))
    finally:
        await pool.close()


async def test_a_provider_checks_its_url_once_and_refuses_on_every_call() -> None:
    """Issue 24: the accepted URL is kept by the provider (with its tenant's routing
    table), not in one process-wide LRU of 4,096 entries that 10,000 tenants, each with
    its own endpoint, would evict on every call. A refused URL is never kept."""
    fake = FakeUpstream(name="own")
    pool = ClientPool(egress=EgressRules.parse("127.0.0.1").everyone)
    refusing = ClientPool(egress=EgressPolicy())
    registry = ProviderRegistry()
    _accepted.cache_clear()
    async with serve(fake) as url:
        cred = Credential(name="mine", provider="ollama", base_url=f"{url}/v1")
        provider, refused = registry.build(cred, pool), registry.build(cred, refusing)
        try:
            for _ in range(3):
                await provider.send("chat", CHAT, "llama3.2")
            for _ in range(2):
                with pytest.raises(UpstreamError, match="egress policy"):
                    await refused.send("chat", CHAT, "llama3.2")
        finally:
            await pool.close()
            await refusing.close()
    checks = _accepted.cache_info()
    assert fake.calls == 3
    assert (checks.hits, checks.misses) == (0, 3)  # one for the provider, one per refusal
