"""Finding 2: a tenant admin with ``providers:write`` must not be able to send a stored
provider key somewhere else by changing the credential's destination without the key.

The attacker: an admin of the tenant (not its owner) who never saw the key. Their server:
a second fake upstream on loopback that records what it receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream, serve

KEY = "sk-victim-secret-0001"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, str, FakeUpstream, str]]:
    real, thief = FakeUpstream(name="real"), FakeUpstream(name="thief")
    async with serve(real) as real_url, serve(thief) as thief_url:
        yield real, real_url, thief, thief_url


def keys_seen(fake: FakeUpstream) -> list[str]:
    return [h.get("authorization", "") for _, _, h in fake.requests]


async def test_moving_a_credential_without_its_key_is_refused_and_the_key_stays_home(
    api: Api,
    owner: httpx.AsyncClient,
    upstreams: tuple[FakeUpstream, str, FakeUpstream, str],
) -> None:
    real, real_url, thief, thief_url = upstreams
    cred = {"provider": "openai", "api_key": KEY, "base_url": f"{real_url}/v1"}
    ok(await owner.put("/v1/gateway/providers/openai", json=cred))
    _, admin_key = await user_with_role(owner, "mallory", "admin")
    async with api.client(admin_key) as mallory:
        moved = await mallory.put(
            "/v1/gateway/providers/openai",
            json={"provider": "openai", "base_url": f"{thief_url}/v1"},
        )
        assert moved.status_code == 422, moved.text
        error = moved.json()["error"]
        assert error["field"] == "api_key" and "base_url" in error["message"]
        # A changed provider kind (its default URL) or a trailing path counts as a move too.
        for body in (
            {"provider": "openai_compatible"},
            {"provider": "openai", "base_url": f"{real_url}/v2"},
        ):
            refused = await mallory.put("/v1/gateway/providers/openai", json=body)
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "api_key"
        ok(await mallory.post("/v1/chat/completions", json=CHAT))
    # Nothing changed: the call went to the real upstream, with the real key.
    assert keys_seen(thief) == []
    assert keys_seen(real) == [f"Bearer {KEY}"]
    listed = ok(await owner.get("/v1/gateway/providers"))["items"]
    assert listed[0]["base_url"] == f"{real_url}/v1"


async def test_a_move_with_a_new_key_sends_only_that_key(
    api: Api,
    owner: httpx.AsyncClient,
    upstreams: tuple[FakeUpstream, str, FakeUpstream, str],
) -> None:
    _, real_url, thief, thief_url = upstreams
    cred = {"provider": "openai", "api_key": KEY, "base_url": f"{real_url}/v1"}
    ok(await owner.put("/v1/gateway/providers/openai", json=cred))
    _, admin_key = await user_with_role(owner, "mallory", "admin")
    async with api.client(admin_key) as mallory:
        own = {"provider": "openai", "base_url": f"{thief_url}/v1", "api_key": "sk-mallory-0002"}
        ok(await mallory.put("/v1/gateway/providers/openai", json=own))
        ok(await mallory.post("/v1/chat/completions", json=CHAT))
    assert keys_seen(thief) == ["Bearer sk-mallory-0002"]
    assert KEY not in str(thief.requests)


async def test_changes_that_keep_the_destination_keep_the_key(
    api: Api, owner: httpx.AsyncClient, upstreams: tuple[FakeUpstream, str, FakeUpstream, str]
) -> None:
    real, real_url, _, _ = upstreams
    cred = {"provider": "openai", "api_key": KEY, "base_url": f"{real_url}/v1"}
    ok(await owner.put("/v1/gateway/providers/openai", json=cred))
    same = {"provider": "openai", "base_url": f"{real_url}/v1/", "weight": 2, "models": []}
    ok(await owner.put("/v1/gateway/providers/openai", json=same))  # no key: same place
    ok(await owner.post("/v1/chat/completions", json=CHAT))
    assert keys_seen(real) == [f"Bearer {KEY}"]


async def test_a_bedrock_region_change_needs_the_secret_and_a_region_is_a_name(
    api: Api, owner: httpx.AsyncClient
) -> None:
    cred = {
        "provider": "bedrock",
        "api_key": "aws-secret-key-0003",
        "options": {"access_key_id": "AKIAEXAMPLE", "region": "us-east-1"},
    }
    ok(await owner.put("/v1/gateway/providers/aws", json=cred))
    moved = {**cred, "options": {"access_key_id": "AKIAEXAMPLE", "region": "eu-west-1"}}
    del moved["api_key"]
    refused = await owner.put("/v1/gateway/providers/aws", json=moved)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "api_key"
    sneaky = {**cred, "options": {"region": "us-east-1.amazonaws.com.evil.example/x"}}
    refused = await owner.put("/v1/gateway/providers/aws", json=sneaky)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "options.region"
