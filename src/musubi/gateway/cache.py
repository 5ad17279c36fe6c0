"""Exact-match response cache: one small kind, in memory (default) or in Redis.

Keys are built by :func:`cache_key` from the tenant and the normalised request, so two
tenants never share an entry. The Redis cache uses the process's one client
(:mod:`musubi.storage.redis_client`, opened by the composition root), which it does not close.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from musubi.errors import InvalidInput
from musubi.kinds import Kind

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CACHES",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_key",
    "memory_cache",
    "redis_cache",
]

_IGNORED = {"stream", "stream_options", "user", "metadata"}


def cache_key(tenant_id: str, op: str, model: str, body: dict[str, Any]) -> str:
    """Tenant + operation + resolved model + the request without transport-only fields."""
    normal = {k: v for k, v in body.items() if k not in _IGNORED and v is not None}
    normal["model"] = model
    text = json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{tenant_id}\0{op}\0{text}".encode()).hexdigest()
    return f"{tenant_id}:{digest}"


class ResponseCache(ABC):
    @abstractmethod
    async def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or None if absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryCache(ResponseCache):
    def __init__(self, max_entries: int = 10_000) -> None:
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.max_entries = max_entries

    async def get(self, key: str) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        self._items[key] = (time.monotonic() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class RedisCache(ResponseCache):
    def __init__(self, redis: Redis, prefix: str = "musubi:cache:") -> None:
        self.redis = redis
        self.prefix = prefix

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.prefix + key)
        return None if raw is None else dict(json.loads(raw))

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        await self.redis.set(self.prefix + key, json.dumps(value), px=max(1, int(ttl_s * 1000)))


CACHES: Kind[ResponseCache] = Kind("caches", ResponseCache)
"""Entry points of ``musubi.caches``: a callable taking the process's one Redis client
(``redis.asyncio.Redis``; None without MUSUBI_REDIS_URL) that returns a
:class:`ResponseCache` (built-ins: ``memory``, ``redis``). The client belongs to the
process: a cache uses it and does not close it."""


def memory_cache(redis: Redis | None = None) -> ResponseCache:
    """The ``memory`` entry point: this process only."""
    return MemoryCache()


def redis_cache(redis: Redis | None) -> ResponseCache:
    """The ``redis`` entry point: shared by every replica."""
    if redis is None:
        raise InvalidInput("the redis cache needs MUSUBI_REDIS_URL", field="redis_url")
    return RedisCache(redis)
