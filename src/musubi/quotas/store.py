"""The counter store behind quotas: all-or-nothing reservation of several counters.

A :class:`Counter` is one fixed window of one metric (``key``), with the ``amount`` to add
and the ``limit`` it may not pass. :meth:`RateLimitStore.reserve` adds every amount, or,
if any counter would pass its limit, adds none and names that counter.
:meth:`RateLimitStore.reserve_flex` also grants a flexible number of units (a call's
output tokens when the client named no limit): as many as every counter has room for, up
to ``high``, each unit adding ``per_unit`` to a counter; fewer than ``low`` is a refusal.
Both are atomic: concurrent reservations never pass a limit together. Backends: in
process (:class:`MemoryStore`, one server) and Redis (:class:`RedisStore`, atomic through
one Lua script, shared by every replica). The Redis store uses the process's one client
(:mod:`musubi.storage.redis_client`), which it neither opens nor closes.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Counter", "MemoryStore", "RateLimitStore", "RedisStore"]


@dataclass(frozen=True)
class Counter:
    key: str
    amount: int
    limit: int
    ttl_s: int  # how long the window's counter must live
    per_unit: float = 0.0  # added per flexible unit granted (reserve_flex)


class RateLimitStore(ABC):
    async def reserve(self, counters: list[Counter]) -> tuple[bool, list[int], int]:
        """(allowed, values after the call, index of the first counter over its limit or -1)."""
        allowed, values, failed, _ = await self.reserve_flex(counters, 0, 0)
        return allowed, values, failed

    @abstractmethod
    async def reserve_flex(
        self, counters: list[Counter], low: int, high: int
    ) -> tuple[bool, list[int], int, int]:
        """:meth:`reserve` plus the flexible units granted, between ``low`` and ``high``."""

    @abstractmethod
    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        """Add ``delta`` to each ``key`` unconditionally (``(key, delta, ttl_s)``)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryStore(RateLimitStore):
    """Counters in this process. Atomic because nothing here awaits."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._sweep_at = 100_000

    def _get(self, key: str, now: float) -> int:
        value, expires = self._values.get(key, (0, 0.0))
        return value if expires > now else 0

    async def reserve_flex(
        self, counters: list[Counter], low: int, high: int
    ) -> tuple[bool, list[int], int, int]:
        now = time.monotonic()
        current = [self._get(c.key, now) for c in counters]
        units = high
        for i, (c, v) in enumerate(zip(counters, current, strict=True)):
            room = c.limit - v - c.amount
            if c.per_unit > 0:
                fits = math.floor(room / c.per_unit) if room >= 0 else -1
                if fits > 0 and math.ceil(c.per_unit * fits) > room:
                    fits -= 1  # a float product rounded up past the room
                if fits < low:
                    return False, current, i, 0
                units = min(units, fits)
            elif c.amount > 0 and room < 0:
                return False, current, i, 0
        after = []
        for c, v in zip(counters, current, strict=True):
            value = v + c.amount + math.ceil(c.per_unit * units)
            expires = self._values.get(c.key, (0, now + c.ttl_s))[1]
            self._values[c.key] = (value, expires if v else now + c.ttl_s)
            after.append(value)
        if len(self._values) > self._sweep_at:
            # Expired windows dropped; the next sweep when the live ones have doubled, not
            # on every call (10,000 tenants keep ~90,000 windows alive).
            self._values = {k: e for k, e in self._values.items() if e[1] > now}
            self._sweep_at = max(100_000, 2 * len(self._values))
        return True, after, -1, units

    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        now = time.monotonic()
        for key, delta, ttl in deltas:
            value = self._get(key, now)
            expires = self._values[key][1] if value else now + ttl
            self._values[key] = (value + delta, expires)


# KEYS: counter keys. ARGV: n, low, high, then amount_i, limit_i, ttl_i, per_unit_i for each
# key. Returns {allowed, failed index, units granted, values...}.
_RESERVE = """
local n = tonumber(ARGV[1])
local low = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local values = {}
for i = 1, n do
  local base = 3 + 4 * (i - 1)
  local amount = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local per_unit = tonumber(ARGV[base + 4])
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  values[i] = v
  local room = limit - v - amount
  if per_unit > 0 then
    local fits = -1
    if room >= 0 then fits = math.floor(room / per_unit) end
    if fits > 0 and math.ceil(per_unit * fits) > room then fits = fits - 1 end
    if fits < low then return {0, i - 1, 0, unpack(values)} end
    if fits < units then units = fits end
  elseif amount > 0 and room < 0 then
    return {0, i - 1, 0, unpack(values)}
  end
end
for i = 1, n do
  local base = 3 + 4 * (i - 1)
  local amount = tonumber(ARGV[base + 1]) + math.ceil(tonumber(ARGV[base + 4]) * units)
  local ttl = tonumber(ARGV[base + 3])
  values[i] = redis.call('INCRBY', KEYS[i], amount)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {1, -1, units, unpack(values)}
"""


class RedisStore(RateLimitStore):
    """Counters in Redis: every replica sees the same budget."""

    def __init__(self, redis: Redis, prefix: str = "musubi:quota:") -> None:
        self.redis = redis
        self._prefix = prefix
        self._script = self.redis.register_script(_RESERVE)

    async def reserve_flex(
        self, counters: list[Counter], low: int, high: int
    ) -> tuple[bool, list[int], int, int]:
        keys = [self._prefix + c.key for c in counters]
        args: list[int | str] = [len(counters), low, high]
        for c in counters:
            args += [c.amount, c.limit, c.ttl_s, repr(c.per_unit)]
        out = await self._script(keys=keys, args=args)
        allowed, failed, units = int(out[0]), int(out[1]), int(out[2])
        values = [int(v) for v in out[3:]]
        values += [0] * (len(counters) - len(values))
        return bool(allowed), values, failed, units

    async def adjust(self, deltas: list[tuple[str, int, int]]) -> None:
        if not deltas:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, delta, ttl in deltas:
                pipe.incrby(self._prefix + key, delta)
                pipe.expire(self._prefix + key, ttl, nx=True)
            await pipe.execute()
