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


async def test_a_flexible_reservation_takes_what_fits_up_to_its_high(store: RateLimitStore) -> None:
    tokens, cost = Counter("tk", 100, 1000, 60, per_unit=1.0), Counter("$", 50, 400, 60, 0.6)
    # cost has room for (400 - 50) / 0.6 = 583 units, tokens for 900: 583 granted
    allowed, values, failed, units = await store.reserve_flex([tokens, cost], 1, 4096)
    assert (allowed, failed, units) == (True, -1, 583)
    assert values == [683, 50 + 350]  # ceil(0.6 * 583) = 350
    # 317 tokens of room left, but the cost counter has none: fewer than low is a refusal
    allowed, values, failed, units = await store.reserve_flex([tokens, cost], 1, 4096)
    assert (allowed, failed, units) == (False, 1, 0) and values == [683, 400]
    # a fixed reservation (low = high) is all or nothing, as before
    assert (await store.reserve_flex([Counter("tk", 10, 1000, 60, 1.0)], 300, 300))[3] == 300
    assert not (await store.reserve_flex([Counter("tk", 10, 1000, 60, 1.0)], 300, 300))[0]


async def test_concurrent_flexible_reservations_never_pass_the_limit(store: RateLimitStore) -> None:
    results = await asyncio.gather(
        *(store.reserve_flex([Counter("f", 5, 1000, 60, 1.0)], 1, 64) for _ in range(60))
    )
    granted = [(5 + units) for ok, _, _, units in results if ok]
    assert sum(granted) == 1000  # every token handed out, none twice
    assert all(1 <= units <= 64 for ok, _, _, units in results if ok)
