"""Redis-backed quotas across replicas, tried as a tenant trying to overspend: two real
``musubi serve`` processes on one PostgreSQL and one Redis (tests/scaleout's cluster).

Already covered in tests/scaleout/test_replicas.py: a requests-per-minute budget and a
tokens-per-day budget under calls split across three replicas (an honest upstream), and
batch lines plus live calls sharing one budget. Here: the worst upstream (it reports more
tokens than it was allowed, CJK prompts that a chars/4 estimate undercounts, streams)
with calls split across replicas, so every settlement goes through the Redis store's
reconcile path; and a budget set on one replica while the others hold a warm policy
cache, which applies everywhere within the documented cache time (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.helpers import new_tenant, ok
from tests.gateway.fakes import FakeUpstream, serve
from tests.scaleout import conftest as scaleout
from tests.scaleout.cluster import Server
from tests.scaleout.test_replicas import clear_of_minute_boundary, connect
from tests.security.test_quota_burst import CJK, greedy, limit_sent, prompt_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

deployment = scaleout.deployment  # the shared PostgreSQL, Redis and MUSUBI_HOME
REPLICAS = 2
CHAT = "/v1/chat/completions"
POLICY_CACHE_S = 5.0  # MUSUBI_AUTH_CACHE_SECONDS' default, documented in docs/deploy.md


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(deployment: scaleout.Deployment) -> list[Server]:
    return await deployment.cluster.start_servers(REPLICAS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def greedy_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(name="greedy", usage_of=greedy, latency=0.05)
    async with serve(fake) as url:
        yield fake, url


async def _tenant(deployment: scaleout.Deployment, servers: list[Server], name: str) -> str:
    async with connect(servers[:1], deployment.owner_key) as (root,):
        _, key = await new_tenant(root, name)
    return key


async def _wire(client: httpx.AsyncClient, url: str) -> None:
    vllm = {"provider": "openai_compatible", "base_url": f"{url}/v1", "models": ["mystery-13b"]}
    ok(await client.put("/v1/gateway/providers/vllm", json=vllm))


def _body(i: int, rng: random.Random) -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": "mystery-13b",
        "messages": [{"role": "user", "content": f"{i}: {CJK * rng.randint(1, 6)}"}],
    }
    if i % 3 == 0:
        b["max_tokens"] = rng.randint(50, 300)
    if i % 5 == 0:
        b["stream"] = True
    return b


async def test_a_greedy_upstream_cannot_overspend_a_budget_split_across_replicas(
    deployment: scaleout.Deployment,
    servers: list[Server],
    greedy_upstream: tuple[FakeUpstream, str],
) -> None:
    fake, url = greedy_upstream
    key = await _tenant(deployment, servers, "greedy")
    budget = 30_000
    rng = random.Random(14)
    async with connect(servers, key) as clients:
        await _wire(clients[0], url)
        limits = {"tokens_per_minute": budget}
        ok(await clients[1].put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
        await clear_of_minute_boundary(20.0)
        before = len(fake.requests)
        responses = await asyncio.gather(
            *(
                clients[i % REPLICAS].post(
                    CHAT, json=_body(i, rng), headers={"x-musubi-cache": "no"}
                )
                for i in range(160)
            )
        )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 429}, [r.text for r in responses if r.status_code >= 500][:3]
    assert codes[429] > 0 and codes[200] >= 6, codes
    received = [b for kind, b, _ in fake.requests[before:] if kind == "chat"]
    assert len(received) == codes[200]
    assert all(limit_sent(b) for b in received)  # every call went up with an output cap
    charged = sum(prompt_bytes(b) + int(limit_sent(b) or 0) for b in received)
    claimed = sum(sum(greedy(b).values()) // 2 for b in received)
    assert charged <= budget, f"{charged} tokens charged against {budget} across replicas"
    assert claimed > budget  # the upstream claimed more; it was not charged past the caps
    deployment.cluster.check_running()


async def test_a_budget_set_on_one_replica_holds_on_the_others_within_the_cache_time(
    deployment: scaleout.Deployment,
    servers: list[Server],
    greedy_upstream: tuple[FakeUpstream, str],
) -> None:
    """Every replica has cached "no limit" for the tenant; the owner sets a budget on one.
    The replica that took the change applies it at once; after the documented cache time
    a burst split across all replicas gets exactly the budget."""
    _, url = greedy_upstream
    key = await _tenant(deployment, servers, "tighten")
    async with connect(servers, key) as clients:
        await _wire(clients[0], url)
        for i, c in enumerate(clients):  # warm each replica's policy cache: no limits
            warm = {"model": "mystery-13b", "max_tokens": 5, "messages": [{"role": "user"}]}
            warm["messages"][0]["content"] = f"warm {i}"
            ok(await c.post(CHAT, json=warm))
        await clear_of_minute_boundary(20.0)
        limits = {"requests_per_minute": 4}
        ok(await clients[0].put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
        here = await asyncio.gather(
            *(
                clients[0].post(CHAT, json={**warm, "messages": [{"role": "user", "content": s}]})
                for s in ("a", "b", "c", "d", "e", "f")
            )
        )
        assert Counter(r.status_code for r in here) == {200: 4, 429: 2}
        await asyncio.sleep(POLICY_CACHE_S + 0.5)
        everywhere = await asyncio.gather(
            *(
                clients[i % REPLICAS].post(
                    CHAT, json={**warm, "messages": [{"role": "user", "content": f"x{i}"}]}
                )
                for i in range(12)
            )
        )
    # The same minute: the 4 already spent on replica 0 leave nothing for anyone.
    assert Counter(r.status_code for r in everywhere) == {429: 12}, [
        (r.request.url.port, r.status_code) for r in everywhere
    ]
    deployment.cluster.check_running()
