from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest

from musubi.quotas.store import MemoryStore, RateLimitStore, RedisStore
from musubi.storage.redis_client import close_redis, open_redis

REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if not redis_available() and os.environ.get("MUSUBI_REQUIRE_POSTGRES") != "1":
        pytest.skip("no Redis on 127.0.0.1:6379")
    client = open_redis(REDIS_URL, max_connections=32)
    yield RedisStore(client, prefix=f"musubi:test:{secrets.token_hex(4)}:")
    await close_redis(client)
