"""Contract suites of the cache and single-flight kinds (memory and Redis), and the
end-to-end cache and coalescing behaviour through a running server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from musubi.gateway.cache import MemoryCache, RedisCache, ResponseCache, cache_key
from musubi.gateway.coalesce import Coalescer, MemoryCoalescer, RedisCoalescer
from musubi.storage.redis_client import close_redis, open_redis
from tests.conftest import Api
from tests.gateway.conftest import set_config
from tests.gateway.fakes import FakeUpstream

REDIS_URL = "redis://127.0.0.1:6379/15"
USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    if request.param == "memory":
        yield MemoryCache(max_entries=3)
        return
    client = open_redis(REDIS_URL, max_connections=4)
    yield RedisCache(client, prefix=f"t{secrets.token_hex(4)}:")
    await close_redis(client)


@pytest.fixture(params=["memory", "redis"])
async def flights(request: pytest.FixtureRequest) -> AsyncIterator[list[Coalescer]]:
    """Two coalescers: two replicas for Redis, one process for memory (used twice)."""
    if request.param == "memory":
        one = MemoryCoalescer()
        yield [one, one]
        return
    prefix = f"t{secrets.token_hex(4)}:"
    clients = [open_redis(REDIS_URL, max_connections=4) for _ in range(2)]  # one per replica
    yield [RedisCoalescer(client, prefix=prefix) for client in clients]
    for client in clients:
        await close_redis(client)


async def test_cache_contract(store: ResponseCache) -> None:
    assert await store.get("k") is None
    await store.set("k", {"a": 1}, ttl_s=60)
    assert await store.get("k") == {"a": 1}
    await store.set("short", {"b": 2}, ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await store.get("short") is None


def test_cache_key_separates_tenants_and_ignores_transport_fields() -> None:
    body = {"messages": USER, "temperature": 0, "stream": True, "user": "u1"}
    same = {"temperature": 0, "messages": USER}
    assert cache_key("t1", "chat", "m", body) == cache_key("t1", "chat", "m", same)
    assert cache_key("t1", "chat", "m", body) != cache_key("t2", "chat", "m", body)
    assert cache_key("t1", "chat", "m", body) != cache_key("t1", "chat", "m2", body)


async def test_single_flight_contract(flights: list[Coalescer]) -> None:
    calls = 0

    async def work() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"n": calls}

    results = await asyncio.gather(*(flights[i % 2].run("key", work) for i in range(20)))
    assert calls == 1
    assert all(r == {"n": 1} for r, _ in results)
    assert sum(not shared for _, shared in results) == 1


async def test_single_flight_error_reaches_every_waiter(flights: list[Coalescer]) -> None:
    async def boom() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(
        *(flights[0].run("err", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_100_identical_concurrent_requests_make_one_upstream_call(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    fake.latency = 0.3
    body = {"model": "gpt-4o-mini", "messages": USER}
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(
        base_url=api.base_url,
        headers={"authorization": f"Bearer {api.owner_key}"},
        limits=limits,
        timeout=30,
    ) as c:
        rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=body) for _ in range(100)))
    assert [r.status_code for r in rs] == [200] * 100
    assert fake.calls == 1
    assert {r.json()["choices"][0]["message"]["content"] for r in rs} == {fake.reply}


async def test_cache_hit_opt_out_and_stream_replay(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    body = {"model": "gpt-4o-mini", "messages": USER}
    first = await owner.post("/v1/chat/completions", json=body)
    second = await owner.post("/v1/chat/completions", json=body)
    assert fake.calls == 1 and "cache=hit" in second.headers["x-musubi-route"]
    assert second.json()["choices"] == first.json()["choices"]
    await owner.post("/v1/chat/completions", json=body, headers={"x-musubi-cache": "no"})
    assert fake.calls == 2
    async with owner.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        lines = [x async for x in r.aiter_lines() if x.startswith("data: ")]
    assert fake.calls == 2 and "cache=hit" in r.headers["x-musubi-route"]
    assert lines[-1] == "data: [DONE]" and fake.reply.split()[0] in "".join(lines)
    await set_config(owner, cache=False)
    await owner.post("/v1/chat/completions", json=body)
    assert fake.calls == 3
