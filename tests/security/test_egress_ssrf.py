"""Finding 8: a tenant admin points a provider at the server's own network.

The server here runs with the default egress policy (no ``MUSUBI_EGRESS_ALLOW``): loopback,
private, link-local and reserved addresses are refused, when a URL is saved and again when
a connection is opened, so a name that changes its address after it was saved (DNS
rebinding) reaches nothing either.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream, serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """A fresh install's policy: no exception for the fakes' loopback address."""
    return Settings(
        home=tmp_path / "home", database_url=database_url, bootstrap_key=None, egress_allow=""
    )


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://10.0.0.5:8000/v1",
        "http://192.168.1.1/v1",
        "http://172.16.0.1/v1",
        "http://100.64.0.1/v1",  # carrier-grade NAT
        "http://127.0.0.1:6379/",  # the server's own Redis
        "http://localhost:5432/",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]:8000/v1",  # IPv4-mapped IPv6
        "http://[fd00::1]/v1",  # unique local
        "http://0.0.0.0:8000/v1",
        "http://127.1:8000/v1",  # legacy IPv4 forms
        "http://2130706433:8000/v1",
        "http://0x7f000001:8000/v1",
        "http://localhost@10.0.0.5/v1",  # user-info trick
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://example.com/",
    ],
)
async def test_a_base_url_into_the_servers_network_is_refused_when_saved(
    owner: httpx.AsyncClient, base_url: str
) -> None:
    body = {"provider": "openai", "api_key": "sk-x-0001", "base_url": base_url}
    r = await owner.put("/v1/gateway/providers/p", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "base_url"
    assert ok(await owner.get("/v1/gateway/providers"))["items"] == []


async def test_a_provider_whose_default_url_is_loopback_needs_the_operator(
    owner: httpx.AsyncClient,
) -> None:
    """A tenant's own ``ollama`` or ``openai_compatible`` credential defaults to loopback:
    refused unless allowed (the server's own Ollama detection is not a tenant's URL)."""
    for provider in ("ollama", "openai_compatible"):
        r = await owner.put(f"/v1/gateway/providers/{provider}", json={"provider": provider})
        assert r.status_code == 422 and r.json()["error"]["field"] == "base_url"


async def test_a_public_base_url_is_accepted(owner: httpx.AsyncClient) -> None:
    body = {"provider": "openai", "api_key": "sk-x-0001", "base_url": "https://8.8.8.8/v1"}
    ok(await owner.put("/v1/gateway/providers/p", json=body))


async def test_dns_rebinding_is_refused_when_the_connection_opens(
    api: Api, owner: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolves to a public address when the URL is saved, and to 127.0.0.1
    (where a service listens) when the gateway connects: the connection is refused, with
    the words a name that does not resolve gets."""
    fake = FakeUpstream(name="internal")
    answer: dict[str, str | None] = {"address": "93.184.215.14"}  # public when saved
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.musubi.test":
            if answer["address"] is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], int(port)))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    async with serve(fake) as url:
        port = int(url.rsplit(":", 1)[1])
        body = {
            "provider": "openai",
            "api_key": "sk-x-0001",
            "base_url": f"http://rebind.musubi.test:{port}/v1",
        }
        ok(await owner.put("/v1/gateway/providers/p", json=body))
        answer["address"] = "127.0.0.1"  # the attacker's DNS now answers loopback
        r = await owner.post("/v1/chat/completions", json=CHAT)
        answer["address"] = None  # and then it does not resolve at all: the same answer
        unknown = await owner.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502, r.text
    assert "egress policy" in r.json()["error"]["message"]
    assert "127.0.0.1" not in r.json()["error"]["message"]  # the resolved address is not told
    assert fake.calls == 0
    assert unknown.json()["error"]["message"] == r.json()["error"]["message"]


async def test_an_oidc_issuer_is_parsed_not_prefix_matched(owner: httpx.AsyncClient) -> None:
    for issuer in (
        "http://localhost@10.0.0.5",  # passed the old startswith("http://localhost") check
        "http://127.0.0.1.evil.example",
        "https://localhost@10.0.0.5",
        "https://169.254.169.254",
        "https://10.0.0.5/realms/x",
        "http://127.0.0.1:8080",  # a development issuer, but loopback is not allowed here
        "https://idp.example/?x=1",
    ):
        body = {"name": "corp", "issuer": issuer, "client_id": "c", "client_secret": "s"}
        r = await owner.post("/v1/sso/idps", json=body)
        assert r.status_code == 422, (issuer, r.text)
        assert r.json()["error"]["field"] == "issuer"
