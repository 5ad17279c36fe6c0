"""Bedrock streams through ConverseStream: AWS's binary event stream, decoded as it arrives.

The decoder is checked against an AWS test vector, on every split of the input and on
corrupt frames; then the whole path runs through a MUSUBI server and the official SDKs,
with a fake Bedrock that checks SigV4 and answers in real event-stream frames.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from musubi.gateway.chunks import Accumulator
from musubi.gateway.providers.base import ClientPool, Credential, StreamCut, UpstreamStatus
from musubi.gateway.providers.bedrock import Bedrock, stream_event
from musubi.gateway.providers.eventstream import (
    Decoder,
    EventStreamError,
    HeaderValue,
    Message,
    encode,
    frame,
)
from tests.conftest import Api
from tests.gateway.conftest import read_stream, set_config, set_provider
from tests.gateway.fakes import FakeUpstream, serve

AKID, SECRET = "AKIDFAKEBEDROCK01", "fake/Secret+Key0123456789abcdefghijklmn"
MODEL = "bedrock-claude-3-5-sonnet"
UPSTREAM_PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# From awslabs' event-stream test vectors: one string header, payload {'foo':'bar'}.
AWS_VECTOR = bytes.fromhex(
    "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a73"
    "6f6e7b27666f6f273a27626172277d8d9c08b1"
)


def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode(headers, json.dumps(payload).encode())


# -- the decoder -----------------------------------------------------------------------


def test_decodes_the_aws_test_vector() -> None:
    (message,) = Decoder().feed(AWS_VECTOR)
    assert message.headers == {"content-type": "application/json"}
    assert message.payload == b"{'foo':'bar'}"


def test_every_header_type_round_trips_on_every_split() -> None:
    when = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    uid = UUID("12345678-1234-5678-1234-567812345678")
    headers: dict[str, HeaderValue] = {
        ":event-type": "contentBlockDelta",
        "yes": True,
        "no": False,
        "int": -70000,
        "long": 2**40,
        "raw": b"\x00\xffbin",
        "at": when,
        "id": uid,
    }
    # byte (2) and short (3) values, which encode() never writes, built by hand
    small = b"\x04tiny\x02" + struct.pack(">b", -5) + b"\x05short\x03" + struct.pack(">h", 300)
    data = (
        encode(headers, b'{"a":1}')
        + frame(small, b"")
        + encode({}, b"")  # no headers, no payload: 16 bytes
        + AWS_VECTOR
    )
    expected = [
        Message(headers, b'{"a":1}'),
        Message({"tiny": -5, "short": 300}, b""),
        Message({}, b""),
        Message({"content-type": "application/json"}, b"{'foo':'bar'}"),
    ]
    assert Decoder().feed(data) == expected
    for cut in range(len(data) + 1):
        decoder = Decoder()
        assert decoder.feed(data[:cut]) + decoder.feed(data[cut:]) == expected, cut
        assert decoder.pending == 0
    decoder = Decoder()
    assert [m for i in range(len(data)) for m in decoder.feed(data[i : i + 1])] == expected


def test_a_partial_message_is_held_until_complete() -> None:
    decoder = Decoder()
    assert decoder.feed(AWS_VECTOR[:20]) == [] and decoder.pending == 20


def test_bad_prelude_crc_is_refused_before_waiting_for_the_body() -> None:
    bad = bytearray(AWS_VECTOR)
    bad[3] ^= 0x40  # total length now claims 125 bytes: only the prelude CRC can tell
    decoder = Decoder()
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.feed(bytes(bad[:12]))
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.feed(AWS_VECTOR)  # it stays failed: where the next message starts is unknown


def test_bad_message_crc_is_refused() -> None:
    good = event("messageStop", {"stopReason": "end_turn"})
    bad = good[:-6] + bytes([good[-6] ^ 0x20]) + good[-5:]  # one payload bit
    decoder = Decoder()
    assert len(decoder.feed(good)) == 1
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.feed(bad)


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (b"\x04name\x07\x00\x09short", "past the end"),  # the string claims 9 bytes, has 5
        (b"\x04name\x0a", "unknown value type 10"),
        (b"\x09truncated", "past the end"),
    ],
)
def test_bad_headers_are_refused(block: bytes, reason: str) -> None:
    with pytest.raises(EventStreamError, match=reason):
        Decoder().feed(frame(block, b"{}"))


def test_an_exception_message_is_an_upstream_error_with_its_status() -> None:
    (message,) = Decoder().feed(
        encode(
            {
                ":message-type": "exception",
                ":exception-type": "throttlingException",
                ":content-type": "application/json",
            },
            b'{"message":"Too many requests, please wait before trying again."}',
        )
    )
    with pytest.raises(UpstreamStatus) as info:
        stream_event("aws", message)
    assert info.value.status == 429 and info.value.retryable
    assert "throttlingException" in info.value.message and "Too many requests" in info.value.message
    (message,) = Decoder().feed(
        encode(
            {":message-type": "exception", ":exception-type": "modelStreamErrorException"}, b"{}"
        )
    )
    with pytest.raises(UpstreamStatus, match="modelStreamErrorException"):
        stream_event("aws", message)
    (message,) = Decoder().feed(event("messageStop", {"stopReason": "end_turn"}))
    assert stream_event("aws", message) == ("messageStop", '{"stopReason": "end_turn"}')


# -- ConverseStream events → canonical chunks ------------------------------------------


async def pairs(frames: list[bytes]) -> AsyncIterator[tuple[str | None, str]]:
    for message in Decoder().feed(b"".join(frames)):
        yield stream_event("aws", message)


def provider() -> Bedrock:
    cred = Credential(name="aws", provider="bedrock", api_key=SECRET, options={"region": "x"})
    return Bedrock(cred, ClientPool())


async def test_text_then_tool_call_become_openai_chunks() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me"}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " look."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event(
            "contentBlockStart",
            {"start": {"toolUse": {"toolUseId": "tu_1", "name": "f"}}, "contentBlockIndex": 1},
        ),
        event(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a":'}}}
        ),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event(
            "metadata",
            {
                "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42},
                "metrics": {"latencyMs": 310},
            },
        ),
    ]
    chunks = [c async for c in provider().decode_stream(pairs(frames), "m")]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    start = chunks[3]["choices"][0]["delta"]["tool_calls"][0]
    assert start == {
        "index": 0,  # the first tool call, though content block 1
        "id": "tu_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    acc = Accumulator()
    for c in chunks:
        acc.feed(c)
    message = acc.response()["choices"][0]
    assert message["message"]["content"] == "Let me look."
    assert message["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert message["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert acc.usage == {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}


async def test_no_message_stop_is_a_cut() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Half"}}),
    ]
    seen = []
    with pytest.raises(StreamCut, match="without messageStop"):
        async for c in provider().decode_stream(pairs(frames), "m"):
            seen.append(c)
    assert seen[-1]["choices"][0]["delta"] == {"content": "Half"}


def test_stream_url_is_converse_stream() -> None:
    p = provider()
    assert p.url("chat", "a.b:0", True).endswith("/model/a.b%3A0/converse-stream")
    assert p.url("chat", "a.b:0", False).endswith("/model/a.b%3A0/converse")


# -- through the server ----------------------------------------------------------------


async def set_aws(owner: httpx.AsyncClient, url: str, secret: str = SECRET) -> None:
    await set_provider(
        owner,
        "aws",
        provider="bedrock",
        api_key=secret,
        base_url=url,
        options={"access_key_id": AKID, "region": "eu-west-3"},
    )


@pytest.fixture
async def aws(owner: httpx.AsyncClient) -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(name="aws", aws_keys={AKID: SECRET})
    async with serve(fake) as url:
        await set_aws(owner, url)
        await set_config(owner, retries=0, cache=False)
        yield fake


_open: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


def oai(api: Api) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=api.owner_key, max_retries=0)
    _open.append(client)
    return client


async def test_openai_sdk_streams_text_from_bedrock_and_usage_is_recorded(
    api: Api, owner: httpx.AsyncClient, aws: FakeUpstream
) -> None:
    stream = await oai(api).chat.completions.create(
        model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    got = await read_stream(stream)
    assert got.text == aws.reply and len([p for p in got.pieces if p]) > 1  # streamed
    assert got.finish == "stop"
    usage = got.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (13, 8)
    assert aws.bedrock_paths == [UPSTREAM_PATH]  # one ConverseStream call, SigV4 accepted
    kind, body, headers = aws.requests[-1]
    assert kind == "converse-stream" and body["messages"] == [
        {"role": "user", "content": [{"text": "Hi"}]}
    ]
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")

    await api.state.ledger.flush()
    items = {u["model"]: u for u in (await owner.get("/v1/usage")).json()["items"]}
    assert items[MODEL]["requests"] == 1 and items[MODEL]["provider"] == "bedrock"
    assert (items[MODEL]["input_tokens"], items[MODEL]["output_tokens"]) == (13, 8)


async def test_openai_sdk_streams_a_tool_call_from_bedrock(
    api: Api, owner: httpx.AsyncClient, aws: FakeUpstream
) -> None:
    stream = await oai(api).chat.completions.create(
        model=MODEL,
        messages=USER,
        tools=[WEATHER],
        stream=True,
    )
    text, finish = "", None
    calls: dict[int, dict[str, str]] = {}
    async for c in stream:
        delta = c.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += call.id or ""
            if call.function:
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert text == "Checking the weather."
    assert calls == {
        0: {"id": "tooluse_fake0001", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    }
    assert finish == "tool_calls"
    spec = aws.requests[-1][1]["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather" and spec["inputSchema"]["json"]["type"] == "object"


async def test_anthropic_sdk_streams_a_bedrock_tool_call(
    api: Api, owner: httpx.AsyncClient, aws: FakeUpstream
) -> None:
    client = anthropic.AsyncAnthropic(base_url=api.base_url, api_key=api.owner_key, max_retries=0)
    _open.append(client)
    tool = {"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}
    async with client.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
        tools=[tool],  # type: ignore[list-item]
    ) as s:
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 8
    assert aws.requests[-1][0] == "converse-stream"


async def test_not_streamed_still_uses_converse(
    api: Api, owner: httpx.AsyncClient, aws: FakeUpstream
) -> None:
    resp = await oai(api).chat.completions.create(model=MODEL, messages=USER)
    assert resp.choices[0].message.content == aws.reply
    assert aws.bedrock_paths == [UPSTREAM_PATH.removesuffix("-stream")]


async def test_a_wrong_secret_is_refused_by_the_fake_as_by_aws(
    api: Api, owner: httpx.AsyncClient
) -> None:
    fake = FakeUpstream(name="aws", aws_keys={AKID: SECRET})
    async with serve(fake) as url:
        await set_aws(owner, url, secret="not-the-secret-key")
        await set_config(owner, retries=0, cache=False)
        r = await owner.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": True}
        )
    assert r.status_code == 502, r.text
    assert "signature we calculated does not match" in r.json()["error"]["message"]
    assert fake.requests[-1][0] == "converse-stream"


async def _sse(owner: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[str]:
    async with owner.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        return [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]


def _text(events: list[str]) -> str:
    """The text relayed by OpenAI chunks or Anthropic content_block_delta events."""
    out = ""
    for e in map(json.loads, events):
        for choice in e.get("choices") or []:
            out += choice["delta"].get("content") or ""
        out += (e.get("delta") or {}).get("text", "")
    return out


@pytest.mark.parametrize(
    ("knobs", "said"),
    [
        ({"cut_after": 3}, "without messageStop"),
        (
            {"cut_after": 3, "stream_exception": ("throttlingException", "Too many tokens")},
            "throttlingException in the stream: Too many tokens",
        ),
        (
            {"cut_after": 4, "stream_exception": ("modelStreamErrorException", "Model broke")},
            "modelStreamErrorException",
        ),
        ({"corrupt_frame": 2}, "message CRC"),
    ],
)
async def test_a_broken_bedrock_stream_ends_with_an_error_event(
    api: Api, owner: httpx.AsyncClient, aws: FakeUpstream, knobs: dict[str, Any], said: str
) -> None:
    for name, value in knobs.items():
        setattr(aws, name, value)
    for path, body in (
        ("/v1/chat/completions", {"model": MODEL, "messages": USER, "stream": True}),
        ("/v1/messages", {"model": MODEL, "max_tokens": 9, "messages": USER, "stream": True}),
    ):
        events = await _sse(owner, path, body)
        last = json.loads(events[-1])
        assert "[DONE]" not in events and "message_stop" not in "".join(events), path
        assert "error" in last and said in json.dumps(last), (path, last)
        text = _text(events[:-1])
        assert text and aws.reply.startswith(text), path  # what came before the break
    with pytest.raises(openai.APIError, match=said.split(":")[0]):
        stream = await oai(api).chat.completions.create(model=MODEL, messages=USER, stream=True)
        async for _ in stream:
            pass


async def test_an_exception_before_any_data_falls_back_like_a_failed_call(
    api: Api,
    owner: httpx.AsyncClient,
    aws: FakeUpstream,
    upstream: tuple[FakeUpstream, str],
) -> None:
    steady, url = upstream
    await set_provider(
        owner, "openai", provider="openai", api_key="sk-test-openai-0001", base_url=f"{url}/v1"
    )
    await set_config(owner, retries=0, cache=False, fallbacks={MODEL: ["gpt-4o-mini"]})
    aws.cut_after, aws.stream_exception = 0, ("throttlingException", "Slow down")
    events = await _sse(
        owner, "/v1/chat/completions", {"model": MODEL, "messages": USER, "stream": True}
    )
    assert events[-1] == "[DONE]" and _text(events[:-1]).strip() == steady.reply
    assert aws.requests[-1][0] == "converse-stream" and steady.calls == 1
