"""The read-through cache in front of keys, routing tables and quota policies: one load
for many callers, refresh ahead of expiry, never a value older than its ttl."""

from __future__ import annotations

import asyncio
import time

import pytest

from musubi.storage.readthrough import ReadThrough


class Source:
    """A value source that counts its loads and can be made slow or failing."""

    def __init__(self) -> None:
        self.loads = 0
        self.value: str | None = "v1"
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def load(self, key: str) -> str | None:
        self.loads += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        return None if self.value is None else f"{key}:{self.value}"


def age(cache: ReadThrough[str, str], key: str, seconds: float) -> None:
    """Pretend the cached value of ``key`` was loaded ``seconds`` ago."""
    loaded, value = cache._items[key]
    cache._items[key] = (loaded - seconds, value)


async def test_concurrent_misses_share_one_load() -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5)
    src.gate.clear()
    waiting = [asyncio.ensure_future(cache.get("k")) for _ in range(50)]
    await asyncio.sleep(0.01)
    src.gate.set()
    assert await asyncio.gather(*waiting) == ["k:v1"] * 50
    assert src.loads == 1
    assert await cache.get("k") == "k:v1" and src.loads == 1  # then served from memory


async def test_refresh_ahead_serves_the_value_while_one_load_replaces_it() -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5, refresh_at=0.8)
    await cache.get("k")
    src.value = "v2"
    age(cache, "k", 4.5)  # past 80% of the ttl, not past the ttl
    src.gate.clear()
    # Nobody waits for the database: every caller gets the current value at once ...
    got = await asyncio.wait_for(asyncio.gather(*(cache.get("k") for _ in range(20))), 1)
    assert got == ["k:v1"] * 20
    assert src.loads == 2  # ... and exactly one refresh runs
    src.gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get("k") == "k:v2"
    assert src.loads == 2


async def test_a_value_is_never_served_past_its_ttl() -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5)
    await cache.get("k")
    src.value = "revoked"
    age(cache, "k", 5.01)
    assert await cache.get("k") == "k:revoked"  # waited for the load


async def test_none_is_not_kept_and_a_vanished_value_is_dropped() -> None:
    src = Source()
    src.value = None
    cache = ReadThrough(src.load, ttl=5)
    assert await cache.get("k") is None
    src.value = "created elsewhere"
    assert await cache.get("k") == "k:created elsewhere"  # found at once, not after the ttl
    src.value = None
    age(cache, "k", 6)
    assert await cache.get("k") is None
    loads = src.loads
    assert await cache.get("k") is None
    assert src.loads == loads + 1  # the vanished value was dropped: read again


async def test_invalidation_during_a_load_keeps_nothing_stale() -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5)
    src.gate.clear()
    first = asyncio.ensure_future(cache.get("k"))
    await asyncio.sleep(0.01)
    cache.invalidate()  # e.g. the key was revoked while its old row was being read
    src.value = "v2"
    src.gate.set()
    assert await first == "k:v2"  # this load read after the change
    assert await cache.get("k") == "k:v2"
    assert src.loads == 2  # but a load that began before it was not kept: read again


async def test_invalidate_by_predicate_keeps_the_others() -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5)
    await cache.get("tenant-a")
    await cache.get("tenant-b")
    cache.invalidate(lambda key, _: key == "tenant-a")
    src.value = "v2"
    assert await cache.get("tenant-a") == "tenant-a:v2"  # forgotten: read again
    assert await cache.get("tenant-b") == "tenant-b:v1"  # still cached
    assert src.loads == 3


async def test_failures_reach_the_waiters_and_a_failed_refresh_keeps_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = Source()
    cache = ReadThrough(src.load, ttl=5)
    src.fail = True
    results = await asyncio.gather(cache.get("k"), cache.get("k"), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert src.loads == 1
    src.fail = False
    assert await cache.get("k") == "k:v1"
    src.fail = True
    age(cache, "k", 4.5)
    assert await cache.get("k") == "k:v1"  # refresh starts in the background and fails
    await asyncio.sleep(0.01)
    assert "background refresh failed" in caplog.text
    assert await cache.get("k") == "k:v1"  # still within its ttl
    age(cache, "k", 1)
    with pytest.raises(RuntimeError):
        await cache.get("k")


async def test_loads_do_not_see_the_callers_context() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    seen = []

    async def load(key: str) -> str:
        seen.append(var.get())
        return key

    cache = ReadThrough(load, ttl=5)
    var.set("request of tenant A")
    await cache.get("k")
    assert seen == ["none"]


async def test_entries_are_stamped_when_their_load_began() -> None:
    async def slow(key: str) -> str:
        await asyncio.sleep(0.05)
        return key

    cache = ReadThrough(slow, ttl=5)
    before = time.monotonic()
    await cache.get("k")
    # The value is as old as the read that produced it, not as the moment it arrived.
    assert cache._items["k"][0] - before < 0.04


class _FeedReading:
    """A change feed that has read recently: entries live until their tenant changes."""

    def fresh(self) -> bool:
        return True


async def test_ten_thousand_warm_tenants_are_served_without_a_load() -> None:
    """Issue 24: with the feed reading, the entries of 10,000 tenants in rotation all stay
    under the default bound, long past the TTL; a bound below the number in rotation (an
    LRU of 4,096) would load again on every call."""
    tenants = [f"ten_{i:05d}" for i in range(10_000)]
    src = Source()
    cache = ReadThrough(src.load, ttl=0.001, feed=_FeedReading())
    for _ in range(3):
        for t in tenants:
            await cache.get(t)
    assert src.loads == 10_000

    small_src = Source()
    small = ReadThrough(small_src.load, ttl=0.001, feed=_FeedReading(), max_items=4096)
    for _ in range(3):
        for t in tenants:
            await small.get(t)
    assert small_src.loads == 30_000
