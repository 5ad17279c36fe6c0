"""Fallbacks, circuit breaker, upstream errors and timeouts, cut streams, disconnects."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.conftest import Api
from tests.gateway.conftest import set_config, set_provider
from tests.gateway.fakes import FakeUpstream, serve

USER = [{"role": "user", "content": "Hi"}]


async def _chat(c: httpx.AsyncClient, model: str = "gpt-4o", **extra: object) -> httpx.Response:
    return await c.post("/v1/chat/completions", json={"model": model, "messages": USER, **extra})


async def _sse(r: httpx.Response) -> list[str]:
    return [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]


async def test_fallback_and_breaker_with_an_upstream_failing_half_its_requests(
    api: Api, owner: httpx.AsyncClient
) -> None:
    flaky, steady = FakeUpstream(name="flaky", fail_every=2), FakeUpstream(name="steady")
    async with serve(flaky) as f_url, serve(steady) as s_url:
        await set_provider(
            owner,
            "flaky",
            provider="openai",
            api_key="sk-flaky-000001",
            base_url=f"{f_url}/v1",
            models=["gpt-4o"],
        )
        await set_provider(
            owner,
            "steady",
            provider="openai",
            api_key="sk-steady-00001",
            base_url=f"{s_url}/v1",
            models=["gpt-4o-mini"],
        )
        await set_config(
            owner,
            retries=0,
            breaker_failures=3,
            breaker_cooldown_s=60,
            cache=False,
            fallbacks={"gpt-4o": ["gpt-4o-mini"]},
        )
        routes = []
        for _ in range(20):
            r = await _chat(owner)
            assert r.status_code == 200, r.text  # every request is answered
            routes.append(r.headers["x-musubi-route"])
        # 3 failures among the last 6 calls open the circuit: flaky sees no more calls.
        assert flaky.calls == 6
        assert steady.calls == 20 - 3  # flaky answered 3 itself
        assert "fallback=gpt-4o->gpt-4o-mini" in routes[1]
        assert "flaky:circuit-open" in routes[-1] and "deployment=steady" in routes[-1]


async def test_retry_honours_retry_after_then_succeeds(api: Api, owner: httpx.AsyncClient) -> None:
    fake = FakeUpstream(fail_every=1, fail_status=429, retry_after=0.15)
    async with serve(fake) as url:
        await set_provider(
            owner, "openai", provider="openai", api_key="sk-x-0000000001", base_url=f"{url}/v1"
        )
        await set_config(owner, retries=2, backoff_s=0, cache=False)
        started = time.perf_counter()
        r = await _chat(owner)
        assert time.perf_counter() - started >= 0.3  # waited Retry-After twice
        assert r.status_code == 502
        assert r.json()["error"]["type"] == "api_error" and "openai" in r.json()["error"]["message"]
        assert fake.calls == 3  # the first try and two retries
        assert "tried=openai:429,openai:429,openai:429" in r.headers["x-musubi-route"]


async def test_timeout_is_504_naming_the_provider(api: Api, owner: httpx.AsyncClient) -> None:
    fake = FakeUpstream(latency=1.0)
    async with serve(fake) as url:
        await set_provider(
            owner, "slowpoke", provider="openai", api_key="sk-x-0000000001", base_url=f"{url}/v1"
        )
        await set_config(owner, retries=0, timeout_s=0.2, cache=False)
        r = await _chat(owner)
    assert r.status_code == 504 and "slowpoke" in r.json()["error"]["message"]


async def test_stream_cut_before_data_falls_back(api: Api, owner: httpx.AsyncClient) -> None:
    cut, steady = FakeUpstream(cut_after=0), FakeUpstream(name="steady")
    async with serve(cut) as c_url, serve(steady) as s_url:
        await set_provider(
            owner,
            "cut",
            provider="openai",
            api_key="sk-x-0000000001",
            base_url=f"{c_url}/v1",
            models=["gpt-4o"],
        )
        await set_provider(
            owner,
            "steady",
            provider="openai",
            api_key="sk-x-0000000002",
            base_url=f"{s_url}/v1",
            models=["gpt-4o-mini"],
        )
        await set_config(owner, retries=0, cache=False, fallbacks={"gpt-4o": ["gpt-4o-mini"]})
        async with owner.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": USER, "stream": True},
        ) as r:
            events = await _sse(r)
        assert events[-1] == "[DONE]" and "fallback=" in r.headers["x-musubi-route"]


async def test_stream_cut_mid_answer_ends_with_an_error_event(
    api: Api, owner: httpx.AsyncClient
) -> None:
    fake = FakeUpstream(cut_after=3)
    async with serve(fake) as url:
        await set_provider(
            owner, "openai", provider="openai", api_key="sk-x-0000000001", base_url=f"{url}/v1"
        )
        await set_config(owner, retries=0, cache=False)
        for path, body in (
            ("/v1/chat/completions", {"model": "gpt-4o", "messages": USER, "stream": True}),
            (
                "/v1/messages",
                {"model": "gpt-4o", "max_tokens": 9, "messages": USER, "stream": True},
            ),
        ):
            async with owner.stream("POST", path, json=body) as r:
                events = await _sse(r)
            assert r.status_code == 200
            last = json.loads(events[-1])
            assert "[DONE]" not in events and "message_stop" not in "".join(events)
            assert "error" in last and "without" in json.dumps(last), path


async def test_client_disconnect_cancels_the_upstream_stream(
    api: Api, owner: httpx.AsyncClient
) -> None:
    fake = FakeUpstream(chunk_delay=0.2, reply=" ".join(["word"] * 50))
    async with serve(fake) as url:
        await set_provider(
            owner, "openai", provider="openai", api_key="sk-x-0000000001", base_url=f"{url}/v1"
        )
        await set_config(owner, cache=False)
        async with owner.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": USER, "stream": True},
        ) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    break  # the client goes away after the first event
        for _ in range(100):
            if fake.aborted:
                break
            await asyncio.sleep(0.05)
        assert fake.aborted == 1  # long before its 10 s of chunks were sent
