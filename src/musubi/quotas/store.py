"""The counter store behind quotas: all-or-nothing reservation of several counters.

A :class:`Counter` is one fixed window of one metric (``key``), with the ``amount`` to add
and the ``limit`` it may not pass. :meth:`RateLimitStore.reserve` adds every amount, or,
if any counter would pass its limit, adds none and names that counter. Backends: in
process (:class:`MemoryStore`, one server) and Redis (:class:`RedisStore`, atomic through
one Lua script, shared by every replica).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from musubi.extras import install_command

__all__ = ["Counter", "MemoryStore", "RateLimitStore", "RedisStore"]


@dataclass(frozen=True)
class Counter:
    key: str
    amount: int
    limit: int
    ttl_s: int  # how long the window's counter must live


class RateLimitStore(ABC):
    @abstractmethod
    async def reserve(self, counters: list[Counter]) -> tuple[bool, list[int], int]:
        """(allowed, values after the call, index of the first counter over its limit or -1)."""

    @abstractmethod
    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        """Add ``delta`` to each ``key`` unconditionally (``(key, delta, ttl_s)``)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryStore(RateLimitStore):
    """Counters in this process. Atomic because nothing here awaits."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}

    def _get(self, key: str, now: float) -> int:
        value, expires = self._values.get(key, (0, 0.0))
        return value if expires > now else 0

    async def reserve(self, counters: list[Counter]) -> tuple[bool, list[int], int]:
        now = time.monotonic()
        current = [self._get(c.key, now) for c in counters]
        for i, (c, v) in enumerate(zip(counters, current, strict=True)):
            if c.amount > 0 and v + c.amount > c.limit:
                return False, current, i
        after = []
        for c, v in zip(counters, current, strict=True):
            expires = self._values.get(c.key, (0, now + c.ttl_s))[1]
            self._values[c.key] = (v + c.amount, expires if v else now + c.ttl_s)
            after.append(v + c.amount)
        if len(self._values) > 100_000:
            self._values = {k: e for k, e in self._values.items() if e[1] > now}
        return True, after, -1

    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        now = time.monotonic()
        for key, delta, ttl in deltas:
            value = self._get(key, now)
            expires = self._values[key][1] if value else now + ttl
            self._values[key] = (value + delta, expires)


# KEYS: counter keys. ARGV: n, then amount_i, limit_i, ttl_i for each key.
_RESERVE = """
local n = tonumber(ARGV[1])
local values = {}
for i = 1, n do
  local amount = tonumber(ARGV[1 + 3 * (i - 1) + 1])
  local limit = tonumber(ARGV[1 + 3 * (i - 1) + 2])
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  values[i] = v
  if amount > 0 and v + amount > limit then
    return {0, i - 1, unpack(values)}
  end
end
for i = 1, n do
  local amount = tonumber(ARGV[1 + 3 * (i - 1) + 1])
  local ttl = tonumber(ARGV[1 + 3 * (i - 1) + 3])
  values[i] = redis.call('INCRBY', KEYS[i], amount)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {1, -1, unpack(values)}
"""


class RedisStore(RateLimitStore):
    """Counters in Redis: every replica sees the same budget."""

    def __init__(self, url: str, prefix: str = "musubi:quota:", max_connections: int = 32) -> None:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                f"the Redis backend needs the 'redis' extra: {install_command('redis')}"
            ) from exc
        # A bounded pool: a burst of calls waits for a connection instead of failing.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
        self._pool: Any = pool
        self._redis: Any = Redis(connection_pool=pool)
        self._prefix = prefix
        self._script = self._redis.register_script(_RESERVE)

    async def reserve(self, counters: list[Counter]) -> tuple[bool, list[int], int]:
        keys = [self._prefix + c.key for c in counters]
        args: list[int] = [len(counters)]
        for c in counters:
            args += [c.amount, c.limit, c.ttl_s]
        out = await self._script(keys=keys, args=args)
        allowed, failed, values = int(out[0]), int(out[1]), [int(v) for v in out[2:]]
        values += [0] * (len(counters) - len(values))
        return bool(allowed), values, failed

    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        if not deltas:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, delta, ttl in deltas:
                pipe.incrby(self._prefix + key, delta)
                pipe.expire(self._prefix + key, ttl, nx=True)
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()
