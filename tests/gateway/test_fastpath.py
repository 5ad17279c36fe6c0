"""The model-call routes skip FastAPI's machinery (musubi.api.fastpath) but must answer
exactly as the FastAPI route would: same auth, limits, error shapes, metrics and audit."""

from __future__ import annotations

import httpx

from musubi.api.app import api_routes, create_app
from musubi.api.fastpath import eligible
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_the_model_call_routes_take_the_fast_path(settings: Settings) -> None:
    """A change that made them ineligible would silently cost ~0.5 ms of CPU per call."""
    paths = {r.path for r in api_routes(create_app(settings).routes) if eligible(r)}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"} <= paths
    assert "/v1/musubi/estimate" not in paths  # a pydantic body: FastAPI validates it
    assert "/v1/teams" not in paths


async def test_a_call_and_its_refusals_answer_as_through_fastapi(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    r = await owner.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "req-fast-1"})
    assert ok(r)["choices"][0]["message"]["content"]
    assert r.headers["x-request-id"] == "req-fast-1" and "x-musubi-route" in r.headers
    # charset parameter: still JSON, still served
    r = await owner.post(
        "/v1/chat/completions",
        content=httpx.Request("POST", "/", json=CHAT).content,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200, r.text

    async with api.client("msk_nope_0000") as stranger:
        r = await stranger.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"

    r = await owner.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"

    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = await owner.post("/v1/chat/completions", json=big)
    assert r.status_code == 413, r.text

    # not a JSON object, or not JSON: FastAPI's own validation answers (falls through)
    r = await owner.post(
        "/v1/chat/completions", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
    r = await owner.post(
        "/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    r = await owner.post(
        "/v1/chat/completions", content=b"hi", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 400

    metrics = (await owner.get("/metrics")).text
    assert 'route="/v1/chat/completions",status="200"' in metrics
    assert 'route="/v1/chat/completions",status="401"' in metrics
    assert fake.calls == 1  # the second good call was a cache hit; no refused one went up
