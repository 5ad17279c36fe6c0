"""The server pieces the VS Code extension needs: fill-in-the-middle suggestions on the
``code-completion`` task through the gateway (quota and usage apply as for any call), and a
project's spend today against its daily quota (``GET /v1/projects/{id}/spend``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream, serve

FIM = {
    "model": "musubi/code-completion",
    "prompt": "# File: src/shop/orders.py\ndef total(orders):\n    return ",
    "suffix": "\n\nprint(total([]))\n",
    "max_tokens": 32,
    "temperature": 0,
}


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream(name="fim", reply="sum(o.amount for o in orders)")
    async with serve(upstream) as url:
        yield upstream, url


async def _project_with_developer(
    owner: httpx.AsyncClient, url: str, name: str = "shop"
) -> tuple[str, str]:
    """A project, an OpenAI credential at the fake, and a developer's key for the project."""
    body = {"provider": "openai", "api_key": "sk-test-openai-0001", "base_url": f"{url}/v1"}
    ok(await owner.put("/v1/gateway/providers/openai", json=body))
    project = ok(await owner.post("/v1/projects", json={"name": name}), 201)["id"]
    _, key = await user_with_role(owner, f"dev-{name}", "developer", project_id=project)
    return project, key


async def _spend(client: httpx.AsyncClient, project: str, requests: int) -> dict[str, object]:
    """The spend once the ledger holds ``requests`` calls (it is written after the answer)."""
    async with asyncio.timeout(10):
        while True:
            spend = ok(await client.get(f"/v1/projects/{project}/spend"))
            if spend["requests"] >= requests:
                return dict(spend)
            await asyncio.sleep(0.05)


async def test_fim_goes_to_the_code_completion_model_with_its_suffix(
    api: Api, owner: httpx.AsyncClient, fake: tuple[FakeUpstream, str]
) -> None:
    upstream, url = fake
    project, key = await _project_with_developer(owner, url)
    async with api.client(key) as dev:
        answer = ok(await dev.post("/v1/completions", json=FIM))
        assert answer["choices"][0]["text"] == "sum(o.amount for o in orders)"
        kind, sent, _ = upstream.requests[-1]
        assert kind == "completion"
        assert sent["model"] == "gpt-4o-mini"  # the first usable model of the task
        assert sent["prompt"] == FIM["prompt"] and sent["suffix"] == FIM["suffix"]
        spend = await _spend(dev, project, 1)
        assert spend["tokens"] == 8  # the fake's usage: 3 in, 5 out
        assert spend["cost"] > 0
        assert spend["cost_per_day"] is None and spend["tokens_per_day"] is None
        # the call is audited like any gateway call
        events = ok(await owner.get("/v1/audit/events"))["items"]
        calls = [e for e in events if e["action"] == "model.call"]
        assert calls and calls[0]["target"] == "gpt-4o-mini", events[:3]
        assert calls[0]["detail"]["project_id"] == project


async def test_spend_shows_the_tightest_daily_quota_and_429_once_spent(
    api: Api, owner: httpx.AsyncClient, fake: tuple[FakeUpstream, str]
) -> None:
    _, url = fake
    project, key = await _project_with_developer(owner, url)
    ok(await owner.put("/v1/quotas", json={"scope": "tenant", "limits": {"cost_per_day": 50}}))
    limits = {"cost_per_day": 2.5, "tokens_per_day": 200}
    body = {"scope": "project", "scope_id": project, "limits": limits}
    ok(await owner.put("/v1/quotas", json=body))
    async with api.client(key) as dev:
        spend = ok(await dev.get(f"/v1/projects/{project}/spend"))
        assert spend["cost_per_day"] == 2.5 and spend["tokens_per_day"] == 200
        assert sorted(x["scope"] for x in spend["limits"]) == ["project", "tenant"]
        assert spend["since"].endswith("T00:00:00+00:00")
        assert ok(await dev.post("/v1/completions", json=FIM))["choices"]
        await _spend(dev, project, 1)
        refused = None
        for i in range(30):  # each prompt differs: the gateway's cache would answer a repeat
            r = await dev.post("/v1/completions", json={**FIM, "prompt": f"{FIM['prompt']}{i}"})
            if r.status_code == 429:
                refused = r
                break
        assert refused is not None, "the project's 200 tokens a day run out"
        assert "tokens_per_day" in refused.json()["error"]["message"]
        assert refused.headers.get("retry-after")


async def test_spend_needs_usage_read_on_that_project(
    api: Api, owner: httpx.AsyncClient, fake: tuple[FakeUpstream, str]
) -> None:
    _, url = fake
    project, _ = await _project_with_developer(owner, url, "shop")
    other = ok(await owner.post("/v1/projects", json={"name": "other"}), 201)["id"]
    _, other_key = await user_with_role(owner, "dev-other", "developer", project_id=other)
    _, no_usage = await user_with_role(owner, "nobody", None)
    async with api.client(other_key) as dev:
        r = await dev.get(f"/v1/projects/{project}/spend")
        assert r.status_code == 403, r.text
        ok(await dev.get(f"/v1/projects/{other}/spend"))
    async with api.client(no_usage) as nobody:
        r = await nobody.get(f"/v1/projects/{project}/spend")
        assert r.status_code == 403, r.text
        assert "usage:read" in r.json()["error"]["message"]


async def test_another_tenant_cannot_see_a_projects_spend(
    api: Api, owner: httpx.AsyncClient, fake: tuple[FakeUpstream, str]
) -> None:
    _, url = fake
    project, _ = await _project_with_developer(owner, url)
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        r = await b.get(f"/v1/projects/{project}/spend")
        assert r.status_code == 404, r.text
        assert project in r.json()["error"]["message"]
