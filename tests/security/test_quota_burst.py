"""Finding 13: token budgets overspent under bursts (CJK prompts whose chars/4 estimate is
low, an upstream that returns more than asked), and a small tokens-per-minute budget
refused every call sent without max_tokens.

The upstream here is the worst a budget can meet: it reports one prompt token per UTF-8
byte of the messages (no tokenizer can count more) and three times the output it was
allowed (or 3,000 tokens when allowed nothing). The promise checked: the budget's counter
never passes its limit, and it is exactly what was charged, each call being charged its
reported usage capped at what it reserved (prompt bound + the max_tokens sent upstream).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, tzinfo
from typing import Any

import httpx
import pytest

from musubi.quotas import QuotaScope
from tests.api.helpers import ok
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream, serve

CJK = "東京の明日の天気と、週末に雨が降るかどうかを詳しく教えてください。"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


def limit_sent(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if value else None


def prompt_bytes(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).encode()) for m in body.get("messages", []))


def greedy(body: dict[str, Any]) -> dict[str, int]:
    """The worst usage an upstream can report: a token per prompt byte, 3x the output."""
    prompt, out = prompt_bytes(body), 3 * (limit_sent(body) or 1000)
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


@pytest.fixture
async def greedy_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(name="greedy", usage_of=greedy)
    async with serve(fake) as url:
        yield fake, url


async def wire(owner: httpx.AsyncClient, url: str, **limits: int) -> str:
    vllm = {"provider": "openai_compatible", "base_url": f"{url}/v1", "models": ["mystery-13b"]}
    ok(await owner.put("/v1/gateway/providers/vllm", json=vllm))
    ok(await owner.put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
    tenant_id: str = ok(await owner.get("/v1/me"))["tenant_id"]
    return tenant_id


def inside_one_minute(api: Api) -> None:
    """Per-minute windows follow the clock: the server's quota clock is stopped early in
    this minute, so a burst never straddles two windows (and no test waits for one)."""
    start = datetime.now(UTC).replace(second=1, microsecond=0)

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Stopped:
            return cls.fromtimestamp(start.timestamp(), tz or UTC)

    api.state.quotas.clock = Stopped


async def counter_of(api: Api, tenant_id: str, budget: int) -> int:
    """The tenant's tokens-per-minute counter, read by reserving whatever room is left
    (nothing: 0 tokens are added) once the calls' settlements have run."""
    for _ in range(50):
        if not api.state.gateway or not api.state.gateway._tasks:
            break
        await asyncio.sleep(0.05)
    probe = await api.state.quotas.reserve(
        QuotaScope(tenant_id), tokens=0, cost=0.0, flex=(0, budget)
    )
    await api.state.quotas.reconcile(probe, tokens=0, cost=0.0)
    return budget - probe.granted


async def test_a_burst_of_300_cjk_calls_to_a_greedy_upstream_stays_within_the_budget(
    api: Api, owner: httpx.AsyncClient, greedy_upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = greedy_upstream
    budget = 40_000
    tenant_id = await wire(owner, url, tokens_per_minute=budget)
    rng = random.Random(13)

    def body(i: int) -> dict[str, Any]:
        text = CJK * rng.randint(1, 8)
        b: dict[str, Any] = {
            "model": "mystery-13b",  # no bundled tokenizer: the byte bound is what holds
            "messages": [{"role": "user", "content": f"{i}: {text}"}],
        }
        if i % 3 == 0:
            b["max_tokens"] = rng.randint(50, 400)
        if i % 5 == 0:
            b["stream"] = True
        return b

    inside_one_minute(api)
    async with api.client(api.owner_key) as client:
        client.headers["x-musubi-cache"] = "no"
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body(i)) for i in range(300))
        )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, [r.text for r in responses if r.status_code >= 500][:3]
    # The burst did hit the budget (a call without max_tokens may hold up to 4,096 tokens
    # until it is settled, so few are in flight at once).
    assert codes.count(200) >= 8 and codes.count(429) > 0
    received = [b for kind, b, _ in fake.requests if kind == "chat"]
    assert len(received) == codes.count(200)
    # Every call went upstream with an output limit: what the budget could cover.
    assert all(limit_sent(b) for b in received)
    charged = sum(prompt_bytes(b) + int(limit_sent(b) or 0) for b in received)
    reported = sum(sum(greedy(b).values()) // 2 for b in received)
    assert charged <= budget, f"{charged} tokens charged against a budget of {budget}"
    assert reported > budget  # what the greedy upstream claimed: not charged past the caps
    assert await counter_of(api, tenant_id, budget) == charged


async def test_a_small_per_minute_budget_serves_calls_without_max_tokens(
    api: Api, owner: httpx.AsyncClient
) -> None:
    """Under 1,024 tokens per minute every call without max_tokens used to be refused
    (1,024 output tokens were reserved for it); now it gets what the budget has left."""
    fake = FakeUpstream(name="modest")  # reports 11 prompt and 7 output tokens
    async with serve(fake) as url:
        await small_budget_calls(api, owner, fake, url)


async def small_budget_calls(
    api: Api, owner: httpx.AsyncClient, fake: FakeUpstream, url: str
) -> None:
    budget = 600
    tenant_id = await wire(owner, url, tokens_per_minute=budget)
    inside_one_minute(api)
    chat = {"model": "mystery-13b", "messages": [{"role": "user", "content": CJK}]}
    first = await owner.post("/v1/chat/completions", json=chat)
    assert first.status_code == 200, first.text
    granted = limit_sent(fake.requests[-1][1])
    assert granted is not None and 0 < granted < budget
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 0  # all of it, for now
    assert await counter_of(api, tenant_id, budget) == 11 + 7  # settled: what was used
    # What is left still serves a call, with a smaller limit; then the minute is spent.
    second = await owner.post("/v1/chat/completions", json=chat)
    assert second.status_code == 200, second.text
    assert limit_sent(fake.requests[-1][1]) == granted - 18  # the first call's 18 are spent
    asked_too_much = await owner.post("/v1/chat/completions", json={**chat, "max_tokens": 700})
    assert asked_too_much.status_code == 429
    assert "tokens_per_minute" in asked_too_much.json()["error"]["message"]
    assert await counter_of(api, tenant_id, budget) == 2 * 18
    assert fake.calls == 2  # the refused call never went upstream
