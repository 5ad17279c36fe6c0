"""The official openai and anthropic SDKs against a running MUSUBI, fake upstreams behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Api
from tests.gateway.conftest import read_stream
from tests.gateway.fakes import FakeUpstream

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
USER = [{"role": "user", "content": "Hi"}]


_open: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


def oai(api: Api, key: str | None = None) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=f"{api.base_url}/v1", api_key=key or api.owner_key, max_retries=0
    )
    _open.append(client)
    return client


def claude(api: Api, key: str | None = None) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(
        base_url=api.base_url, api_key=key or api.owner_key, max_retries=0
    )
    _open.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


async def test_chat_not_streamed(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    fake, _ = wired
    raw = await oai(api).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == fake.reply
    assert resp.usage is not None and resp.usage.total_tokens == 18
    route = raw.headers["x-musubi-route"]
    assert "model=gpt-4o-mini" in route and "deployment=openai" in route
    kind, body, headers = fake.requests[-1]
    assert kind == "chat" and body["model"] == "gpt-4o-mini"
    assert (
        headers["authorization"] == "Bearer sk-test-openai-0001"
    )  # the tenant's key, not MUSUBI's


async def test_chat_streamed_with_usage(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    fake, _ = wired
    stream = await oai(api).chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    got = await read_stream(stream)
    assert got.text.strip() == fake.reply
    assert got.usage is not None and got.usage.completion_tokens == 7


async def test_stream_without_include_usage_has_no_usage_chunk(
    api: Api, wired: tuple[FakeUpstream, str]
) -> None:
    stream = await oai(api).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


async def test_tools_and_json_mode(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    client = oai(api)
    resp = await client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    call = resp.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and resp.choices[0].finish_reason == "tool_calls"  # type: ignore[union-attr]
    resp = await client.chat.completions.create(
        model="gpt-4o", messages=USER, response_format={"type": "json_object"}
    )
    assert resp.choices[0].message.content == '{"answer": 42}'


async def test_embeddings_and_completions(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    client = oai(api)
    emb = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in emb.data] == [0, 1] and len(emb.data[0].embedding) == 3
    done = await client.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert done.choices[0].text == wired[0].reply


async def test_models_lists_only_usable_models(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    names = {m.id async for m in oai(api).models.list()}
    assert {"gpt-4o", "claude-sonnet-4", "musubi/code", "text-embedding-3-small"} <= names
    assert "gemini-2.0-flash" not in names  # no Gemini credential


async def test_anthropic_sdk_to_anthropic_upstream(
    api: Api, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    msg = await claude(api).messages.create(model="claude-3-5-haiku", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    assert msg.content[0].text == fake.reply  # type: ignore[union-attr]
    assert msg.usage.input_tokens == 12 and msg.stop_reason == "end_turn"
    _, body, headers = fake.requests[-1]
    assert (
        body["model"] == "claude-3-5-haiku-20241022" and headers["x-api-key"] == "sk-ant-test-0002"
    )


async def test_anthropic_streaming_events_in_order(
    api: Api, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    stream = await claude(api).messages.create(
        model="claude-3-5-haiku",
        max_tokens=100,
        messages=USER,
        stream=True,  # type: ignore[arg-type]
    )
    types = [ev.type async for ev in stream]
    assert types[:3] == ["message_start", "content_block_start", "content_block_delta"] or types[
        :2
    ] == [
        "message_start",
        "ping",
    ]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    async with claude(api).messages.stream(
        model="gpt-4o-mini",
        max_tokens=50,
        messages=USER,  # type: ignore[arg-type]
    ) as s:
        text = await s.get_final_text()
    assert text.strip() == fake.reply  # an OpenAI model through the Anthropic API


async def test_anthropic_tools_both_ways(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    tool = {"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}
    for model in ("claude-sonnet-4", "gpt-4o"):
        msg = await claude(api).messages.create(
            model=model,
            max_tokens=100,
            messages=USER,
            tools=[tool],  # type: ignore[arg-type, list-item]
        )
        block = msg.content[0]
        assert block.type == "tool_use" and block.name == "get_weather", model
        assert block.input == {"city": "Paris"} and msg.stop_reason == "tool_use"
    async with claude(api).messages.stream(
        model="claude-sonnet-4",
        max_tokens=100,
        messages=USER,
        tools=[tool],  # type: ignore[arg-type, list-item]
    ) as s:
        final = await s.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}


async def test_error_shapes(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        await oai(api).chat.completions.create(model="nope-1", messages=USER)
    assert "gpt-4o-mini" in nf.value.message  # lists what this key may use
    assert nf.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        await oai(api).chat.completions.create(
            model="gpt-4o", messages=[{"role": "wizard", "content": "x"}]
        )  # type: ignore[list-item, misc]
    assert bad.value.body["param"] == "messages.0.role"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        await oai(api, "msk_bad").chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(anthropic.NotFoundError) as anf:
        await claude(api).messages.create(model="nope-1", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert anf.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": anf.value.body["error"]["message"]},
    }  # type: ignore[index]
    async with httpx.AsyncClient(base_url=api.base_url) as c:
        r = await c.post(
            "/v1/messages",
            json={"model": "gpt-4o", "max_tokens": 5, "messages": []},
            headers={"x-api-key": api.owner_key},
        )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "messages" in r.json()["error"]["message"]
    # Other routes keep MUSUBI's own shape.
    async with api.client(api.owner_key) as c:
        r = await c.get("/v1/teams/team_nope")
    assert r.json()["error"]["type"] == "not_found"


async def test_anthropic_sdk_count_tokens(api: Api, wired: tuple[FakeUpstream, str]) -> None:
    """Claude Code calls ``messages.count_tokens``; it was a bare 404."""
    fake, _ = wired
    calls = len(fake.requests)
    client = claude(api)
    raw = await client.messages.with_raw_response.count_tokens(
        model="claude-3-5-haiku",
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello there, how are you?"}],
    )
    counted = await raw.parse()
    # counted offline (no upstream call), as the estimate endpoint counts the same request
    assert raw.headers["x-musubi-token-method"] == "estimate:chars/4"
    # 3 per message + 3 for the reply, "system" 2 + "You are terse." 4, "user" 1 + 7
    assert counted.input_tokens == 3 * 2 + 3 + 2 + 4 + 1 + 7
    assert len(fake.requests) == calls
    with_tools = await client.messages.count_tokens(
        model="claude-3-5-haiku",
        messages=[{"role": "user", "content": "Hello there, how are you?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    )
    assert with_tools.input_tokens > counted.input_tokens - 6
    gpt = await client.messages.count_tokens(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert gpt.input_tokens == 3 + 3 + 1 + 1  # o200k: "user" and "Hi" are one token each
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="nope-1", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.count_tokens(model="gpt-4o", messages=[])
    assert "messages" in bad.value.message
    with pytest.raises(anthropic.AuthenticationError):
        await claude(api, "msk_bad").messages.count_tokens(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
