"""Cross-tenant cases of the gateway's routes, used by tests/api/test_isolation.py.

Tenant A configures a provider credential (at an address nothing listens on) and an
alias; tenant B's valid key must never see, change or use them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from tests.api.helpers import ok


class _World(Protocol):
    a: httpx.AsyncClient
    b: httpx.AsyncClient


A_URL = "http://127.0.0.1:9/v1"  # A's upstream: calling it would be a 502, not a 404
USER = [{"role": "user", "content": "hi"}]


async def _a_configures(w: _World) -> None:
    body = {"provider": "openai", "api_key": "sk-tenant-a-secret-1", "base_url": A_URL}
    ok(await w.a.put("/v1/gateway/providers/openai", json=body))
    ok(await w.a.put("/v1/gateway/config", json={"aliases": {"a-alias": "gpt-4o"}}))


async def _a_unchanged(w: _World) -> None:
    items = ok(await w.a.get("/v1/gateway/providers"))["items"]
    assert [(i["name"], i["base_url"]) for i in items] == [("openai", A_URL)]
    assert ok(await w.a.get("/v1/gateway/config"))["aliases"] == {"a-alias": "gpt-4o"}


def _case(body: Callable[[_World], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        await _a_configures(w)
        await body(w)
        await _a_unchanged(w)

    return case


async def _list(w: _World) -> None:
    r = ok(await w.b.get("/v1/gateway/providers"))
    assert r["items"] == [] and "sk-tenant-a" not in str(r)


async def _put(w: _World) -> None:
    body = {
        "provider": "openai",
        "api_key": "sk-tenant-b-secret-2",
        "base_url": "http://127.0.0.1:10/v1",
    }
    ok(await w.b.put("/v1/gateway/providers/openai", json=body))  # B's own, same name


async def _delete(w: _World) -> None:
    r = await w.b.delete("/v1/gateway/providers/openai")
    assert r.status_code == 404, r.text


async def _config(w: _World) -> None:
    assert ok(await w.b.get("/v1/gateway/config"))["aliases"] == {}


async def _put_config(w: _World) -> None:
    ok(await w.b.put("/v1/gateway/config", json={"aliases": {"a-alias": "gpt-4o-mini"}}))


# Keyless providers every tenant shares by design: a detected Ollama, the offline model.
IMPLICIT = ("ollama", "local")


async def _catalogue(w: _World) -> None:
    items = ok(await w.b.get("/v1/gateway/catalogue"))["items"]
    assert not [m for m in items if m["usable"] and m["provider"] not in IMPLICIT]


async def _models(w: _World) -> None:
    data = ok(await w.b.get("/v1/models"))["data"]
    assert not [m for m in data if m["owned_by"] not in IMPLICIT]


def _call(path: str, body: dict[str, Any]) -> Callable[[Any], Awaitable[None]]:
    async def case(w: _World) -> None:
        for model in (body["model"], "a-alias"):
            r = await w.b.post(path, json={**body, "model": model})
            assert r.status_code == 404, r.text  # not 502: A's credential is never tried

    return _case(case)


async def _estimate(w: _World) -> None:
    r = await w.b.post("/v1/musubi/estimate", json={"model": "a-alias", "messages": USER})
    assert r.status_code == 404, r.text
    ok(await w.b.post("/v1/musubi/estimate", json={"model": "gpt-4o", "messages": USER}))


GATEWAY_CASES: dict[tuple[str, str], Callable[[Any], Awaitable[None]]] = {
    ("GET", "/v1/gateway/providers"): _case(_list),
    ("PUT", "/v1/gateway/providers/{name}"): _case(_put),
    ("DELETE", "/v1/gateway/providers/{name}"): _case(_delete),
    ("GET", "/v1/gateway/config"): _case(_config),
    ("PUT", "/v1/gateway/config"): _case(_put_config),
    ("GET", "/v1/gateway/catalogue"): _case(_catalogue),
    ("GET", "/v1/models"): _case(_models),
    ("POST", "/v1/chat/completions"): _call(
        "/v1/chat/completions", {"model": "gpt-4o", "messages": USER}
    ),
    ("POST", "/v1/completions"): _call("/v1/completions", {"model": "gpt-4o", "prompt": "hi"}),
    ("POST", "/v1/embeddings"): _call(
        "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}
    ),
    ("POST", "/v1/messages"): _call(
        "/v1/messages", {"model": "gpt-4o", "max_tokens": 5, "messages": USER}
    ),
    ("POST", "/v1/messages/count_tokens"): _call(
        "/v1/messages/count_tokens", {"model": "gpt-4o", "messages": USER}
    ),
    ("POST", "/v1/musubi/estimate"): _case(_estimate),
}
