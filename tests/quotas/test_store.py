"""Contract suite: every RateLimitStore backend behaves the same."""

from __future__ import annotations

import asyncio

from musubi.quotas.store import Counter, RateLimitStore


async def test_reserves_all_or_nothing(store: RateLimitStore) -> None:
    a, b = Counter("a", 5, 10, 60), Counter("b", 5, 7, 60)
    assert (await store.reserve([a, b]))[:2] == (True, [5, 5])
    allowed, values, failed = await store.reserve([a, b])
    assert not allowed and failed == 1 and values == [5, 5]
    # Nothing was added to "a" by the refused call.
    assert (await store.reserve([Counter("a", 5, 10, 60)]))[:2] == (True, [10])


async def test_adjust_corrects_a_reservation(store: RateLimitStore) -> None:
    await store.reserve([Counter("t", 100, 150, 60)])
    await store.adjust([("t", -80, 60)])  # used 20 of the 100 reserved
    allowed, values, _ = await store.reserve([Counter("t", 100, 150, 60)])
    assert allowed and values == [120]


async def test_concurrent_reservations_never_pass_the_limit(store: RateLimitStore) -> None:
    results = await asyncio.gather(*(store.reserve([Counter("c", 7, 100, 60)]) for _ in range(50)))
    granted = sum(1 for ok, _, _ in results if ok)
    assert granted == 14  # 14 * 7 = 98 <= 100 < 15 * 7
