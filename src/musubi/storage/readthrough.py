"""A read-through cache for what the request path reads from the database (keys, routing
tables, quota policies): each value is loaded once per ``ttl`` seconds, however many
requests ask at the same time.

- **Single flight.** Callers that miss together share one load instead of each running
  its own query (before this, the 50 requests in flight when an entry expired ran 50
  queries at once and stalled the event loop for all of them).
- **Refresh ahead.** A value older than ``refresh_at`` of its ``ttl`` is still served,
  and one background load replaces it; under steady traffic no request waits for the
  database. A value is never served past ``ttl``: a caller then waits for the load, so a
  change made in another process (a revoked key, a new quota) shows within ``ttl``.
- A load that returns ``None`` (e.g. an unknown key) is not kept, so what is created
  elsewhere is found at once. A failed refresh keeps the old value until ``ttl``; a
  failed load raises to every caller waiting for it.

- **Kept until changed.** With a :class:`~musubi.storage.changes.ChangeFeed` (``feed``)
  that has read recently, a value lives ``max_age`` (an hour) instead of ``ttl``: the
  feed invalidates it when its tenant changes, in any process. A TTL of a few seconds
  made every call of a tenant that calls less often than that reload (and decrypt) its
  key, routing table and quota policy: with 1,000 tenants in rotation a call cost 9x the
  CPU (issue 24). When the feed stops reading, ``ttl`` applies again.
- **Bounded.** At most ``max_items`` values, the least recently used dropped first (a
  flood of unknown keys cannot push out the tenants in use).

Loads run in a context of their own: the first caller's request binding (tenant, actor)
does not leak into a value every caller shares.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["ReadThrough"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger("musubi.storage")


class Freshness(Protocol):
    """What a cache asks its change feed: whether it has read recently enough to rely on."""

    def fresh(self) -> bool: ...


class ReadThrough(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V | None]],
        *,
        ttl: float,
        refresh_at: float = 0.8,
        max_items: int = 100_000,
        feed: Freshness | None = None,
        max_age: float = 3600.0,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.max_age = max_age
        self._refresh_at = refresh_at
        self._max_items = max_items
        self._feed = feed
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Task[V | None]] = {}

    async def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            ttl = self.max_age if self._feed is not None and self._feed.fresh() else self.ttl
            if age < ttl * self._refresh_at:
                self._items.move_to_end(key)
                return hit[1]
            if age < ttl:
                if key not in self._loading:
                    self._start(key).add_done_callback(_log_refresh_failure)
                return hit[1]
        task = self._loading.get(key) or self._start(key)
        return await asyncio.shield(task)

    def invalidate(self, predicate: Callable[[K, V], bool] | None = None) -> None:
        """Forget every value, or those ``predicate(key, value)`` picks. A load already
        running is not cancelled, but what it returns is not kept."""
        if predicate is None:
            self._items.clear()
        else:
            for k in [k for k, v in self._items.items() if predicate(k, v[1])]:
                del self._items[k]
        self._loading.clear()

    def _start(self, key: K) -> asyncio.Task[V | None]:
        task = asyncio.get_running_loop().create_task(
            self._fill(key), context=contextvars.Context()
        )
        self._loading[key] = task
        return task

    async def _fill(self, key: K) -> V | None:
        started = time.monotonic()
        task = asyncio.current_task()
        try:
            value = await self._load(key)
        finally:
            kept = self._loading.get(key) is task
            if kept:
                del self._loading[key]
        if not kept:  # invalidated while loading: answer the waiters, keep nothing
            return value
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = (started, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)
        return value


def _log_refresh_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "a background refresh failed; the cached value is served until it expires",
            exc_info=task.exception(),
        )
