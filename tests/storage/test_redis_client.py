"""One Redis client per process: the app's state opens it, every Redis user (quota store,
response cache, coalescer, job queue) runs on its one connection pool, and closing the
state closes that pool (Redis itself is asked which connections are open)."""

from __future__ import annotations

import secrets

import redis.asyncio as redis

from musubi.api.app import create_app
from musubi.batch.queue import RedisQueue
from musubi.gateway.cache import RedisCache
from musubi.gateway.coalesce import RedisCoalescer
from musubi.quotas.store import Counter, RedisStore
from musubi.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/15"


async def _connections_named(name: str) -> int:
    probe = redis.Redis.from_url(REDIS_URL)
    try:
        clients = await probe.client_list()
        return sum(1 for c in clients if c.get("name") == name)
    finally:
        await probe.aclose()


async def test_one_pool_shared_by_every_redis_user_and_closed_with_the_state(
    settings: Settings,
) -> None:
    name = f"musubi-test-{secrets.token_hex(4)}"  # this server's connections, seen by Redis
    settings = settings.model_copy(
        update={
            "redis_url": f"{REDIS_URL}?client_name={name}",
            "queue": "redis",
            "redis_max_connections": 5,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.musubi
        assert state.redis is not None
        pool = state.redis.connection_pool
        assert pool.max_connections == 5

        store, gateway, queue = state.quotas.store, state.gateway, state.queue
        assert isinstance(store, RedisStore)
        assert isinstance(gateway.cache, RedisCache)
        assert isinstance(gateway.coalescer, RedisCoalescer)
        assert isinstance(queue, RedisQueue)
        users = [store.redis, gateway.cache.redis, gateway.coalescer.redis, queue.arq]
        assert {id(user.connection_pool) for user in users} == {id(pool)}

        # each user talks to Redis through it
        prefix = secrets.token_hex(4)
        ok, _, _ = await store.reserve([Counter(f"{prefix}:c", 1, 10, 60)])
        assert ok
        await gateway.cache.set(f"{prefix}:k", {"a": 1}, ttl_s=60)
        assert await gateway.cache.get(f"{prefix}:k") == {"a": 1}
        result, shared = await gateway.coalescer.run(f"{prefix}:f", _answer)
        assert (result, shared) == ({"x": 1}, False)
        assert await queue.arq.ping()
        assert 1 <= await _connections_named(name) <= 5
    assert await _connections_named(name) == 0


async def _answer() -> dict[str, int]:
    return {"x": 1}
