"""Single-flight: identical concurrent requests share one upstream call.

:class:`MemoryCoalescer` joins callers inside one process. :class:`RedisCoalescer` does
that too, and across replicas: the first replica takes a lock (``SET NX``, extended while
its call runs), the others wait for the result it publishes under a short-lived key, or
take over if it gives up or dies. It uses the process's one Redis client
(:mod:`musubi.storage.redis_client`), which it does not close.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Coalescer", "MemoryCoalescer", "RedisCoalescer"]

Work = Callable[[], Awaitable[dict[str, Any]]]


class Coalescer(ABC):
    @abstractmethod
    async def run(self, key: str, work: Work) -> tuple[dict[str, Any], bool]:
        """(result, whether it came from another caller's call)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryCoalescer(Coalescer):
    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def run(self, key: str, work: Work) -> tuple[dict[str, Any], bool]:
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), True
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            result = await work()
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # mark retrieved: waiters get it, nobody else must
            raise
        else:
            flight.set_result(result)
            return result, False
        finally:
            del self._flights[key]


class RedisCoalescer(Coalescer):
    def __init__(
        self,
        redis: Redis,
        *,
        lock_s: float = 10.0,
        poll_s: float = 0.01,
        prefix: str = "musubi:sf:",
    ) -> None:
        self.redis = redis
        self._local = MemoryCoalescer()
        self.lock_s, self.poll_s, self.prefix = lock_s, poll_s, prefix

    async def run(self, key: str, work: Work) -> tuple[dict[str, Any], bool]:
        remote = False

        async def across() -> dict[str, Any]:
            nonlocal remote
            result, remote = await self._across(key, work)
            return result

        result, local = await self._local.run(key, across)
        return result, local or remote

    async def _across(self, key: str, work: Work) -> tuple[dict[str, Any], bool]:
        lock, done = f"{self.prefix}lock:{key}", f"{self.prefix}done:{key}"
        token = secrets.token_hex(8)
        while True:
            if await self.redis.set(lock, token, nx=True, px=int(self.lock_s * 1000)):
                keeper = asyncio.create_task(self._keep(lock, token))
                try:
                    # a caller that finished just before we locked left its result here
                    raw = await self.redis.get(done)
                    if raw is not None:
                        return dict(json.loads(raw)), True
                    result = await work()
                    await self.redis.set(done, json.dumps(result), px=5_000)
                    return result, False
                finally:
                    keeper.cancel()
                    if await self.redis.get(lock) == token.encode():
                        await self.redis.delete(lock)
            while True:  # another replica is working on it
                raw = await self.redis.get(done)
                if raw is not None:
                    return dict(json.loads(raw)), True
                if not await self.redis.exists(lock):
                    break  # it gave up without a result: try to take over
                await asyncio.sleep(self.poll_s)

    async def _keep(self, lock: str, token: str) -> None:
        """Extend our lock while the call runs: a holder that dies (SIGKILL) stops
        extending it, and the others take over within ``lock_s``."""
        while True:
            await asyncio.sleep(self.lock_s / 3)
            if await self.redis.get(lock) != token.encode():
                return
            await self.redis.pexpire(lock, int(self.lock_s * 1000))
