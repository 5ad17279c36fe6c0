"""Router plans, weighted choice, circuit breaker, token counting and the estimate API."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import pytest

from musubi.errors import NotFound
from musubi.gateway.breaker import CircuitBreaker
from musubi.gateway.catalogue import Catalogue
from musubi.gateway.config import RouterConfig
from musubi.gateway.providers.base import ClientPool, Credential
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.router import RoutingTable, pick_weighted
from musubi.gateway.tokens import count_request_tokens
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream


def table(config: RouterConfig | None = None) -> RoutingTable:
    creds = [
        Credential(name="oa-1", provider="openai", weight=3),
        Credential(name="oa-2", provider="openai", weight=1),
        Credential(name="claude", provider="anthropic"),
        Credential(name="vllm", provider="openai_compatible", models=("qwen-coder",)),
    ]
    return RoutingTable(
        "t1", config or RouterConfig(), creds, Catalogue.builtin(), ProviderRegistry(), ClientPool()
    )


def test_alias_task_fallback_and_explicit_plans() -> None:
    t = table(
        RouterConfig(
            aliases={"fast": "gpt-4o-mini"},
            fallbacks={"gpt-4o": ["claude-sonnet-4"]},
            tasks={"code": ["qwen-coder", "gpt-4.1"]},
        )
    )
    plan = t.plan("fast")
    assert plan.groups[0][0].name == "gpt-4o-mini" and plan.how == ["alias=fast->gpt-4o-mini"]
    assert [m.name for m, _ in t.plan("gpt-4o").groups] == ["gpt-4o", "claude-sonnet-4"]
    assert [m.name for m, _ in t.plan("musubi/code").groups] == ["qwen-coder", "gpt-4.1"]
    assert [m.name for m, _ in t.plan("auto", task="cheap").groups] == [
        "gpt-4o-mini",
        "claude-3-5-haiku",
    ]
    explicit = t.plan("vllm/some-other-model").groups[0][1][0]
    assert explicit.model.upstream == "some-other-model" and explicit.credential == "vllm"
    with pytest.raises(NotFound) as nf:
        t.plan("gemini-2.0-flash")
    assert "gpt-4o" in nf.value.message


def test_allow_list_hides_models() -> None:
    t = table(RouterConfig(allow=["gpt-4o-mini", "claude-*"]))
    assert "gpt-4o" not in t.usable_models() and "claude-sonnet-4" in t.usable_models()
    with pytest.raises(NotFound):
        t.plan("gpt-4o")


def test_weighted_choice_follows_weights() -> None:
    deps = table().by_model["gpt-4o"]
    rng = random.Random(7)
    firsts = Counter(pick_weighted(deps, rng)[0].credential for _ in range(4000))
    assert 0.7 < firsts["oa-1"] / 4000 < 0.8  # weight 3 of 4


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(clock=lambda: now[0])
    for ok in (True, False, True, False, True, False):
        b.success("d") if ok else b.failure("d", threshold=3)
    assert b.state("d") == "open" and not b.allow("d", cooldown_s=10)
    now[0] = 11
    assert b.allow("d", 10) and not b.allow("d", 10)  # one trial at a time
    b.failure("d", 3)
    assert b.state("d") == "open"
    now[0] = 30
    assert b.allow("d", 10)
    b.success("d")
    assert b.state("d") == "closed"


def test_token_counting_exact_and_estimated() -> None:
    cat = Catalogue.builtin()
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    assert count_request_tokens(body, cat.models["gpt-4o"]) == 3 + 1 + 2 + 3  # framing+role+text
    assert count_request_tokens(body, cat.models["claude-sonnet-4"]) > 0


async def test_estimate_endpoint(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str]
) -> None:
    r = await owner.post(
        "/v1/musubi/estimate",
        json={
            "models": ["gpt-4o", "claude-sonnet-4"],
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": "hello world"}],
        },
    )
    assert r.status_code == 200, r.text
    gpt, claude = r.json()["estimates"]
    assert gpt["method"] == "tiktoken:o200k_base" and gpt["input_tokens"] == 9
    assert gpt["cost"] == pytest.approx((9 * 2.5 + 1000 * 10) / 1e6)
    assert claude["method"] == "estimate:chars/4" and claude["fits"] is True
