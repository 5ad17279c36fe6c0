"""Pure transforms of every provider, on dicts; SigV4 against AWS's published example."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from musubi.gateway.anthropic_format import (
    AnthropicStreamEncoder,
    from_anthropic_request,
    to_anthropic_response,
)
from musubi.gateway.catalogue import Catalogue
from musubi.gateway.chunks import Accumulator, replay_as_chunks
from musubi.gateway.providers.base import ClientPool, Credential, Provider, StreamCut
from musubi.gateway.providers.registry import ProviderRegistry, installed_providers
from musubi.gateway.providers.sigv4 import sign_v4
from tests.gateway.openai_spec import validate_openai_request

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
REQ: dict[str, Any] = {
    "model": "x",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ],
    "tools": [TOOL],
    "max_tokens": 50,
    "temperature": 0.2,
    "stream": True,
}


def build(kind: str, **cred: Any) -> Provider:
    return ProviderRegistry().build(Credential(name=kind, provider=kind, **cred), ClientPool())


async def events(items: list[tuple[str | None, str]]) -> AsyncIterator[tuple[str | None, str]]:
    for item in items:
        yield item


def test_catalogue_has_ten_priced_models_of_several_providers() -> None:
    cat = Catalogue.builtin()
    assert len(cat.models) >= 10
    assert {m.provider for m in cat.models.values()} >= {"openai", "anthropic", "gemini", "bedrock"}
    assert cat.models["gpt-4o"].cost(1_000_000, 1_000_000) == pytest.approx(12.5)


def test_every_provider_kind_is_registered_once() -> None:
    names = [k.name for k in installed_providers()]
    assert len(names) == len(set(names)) >= 11


@pytest.mark.parametrize(
    "kind", ["openai", "mistral", "groq", "together", "deepseek", "ollama", "openai_compatible"]
)
def test_openai_family_request_is_valid_per_spec(kind: str) -> None:
    p = build(kind, api_key="k")
    body = p.transform_request("chat", REQ, "gpt-4o")
    assert body["stream_options"] == {"include_usage": True}
    validate_openai_request("chat", body)
    assert p.url("chat", "gpt-4o", True).endswith("/chat/completions")


def test_azure_url_and_key_header() -> None:
    p = build(
        "azure",
        api_key="az",
        base_url="https://r.openai.azure.com",
        options={"api_version": "2024-10-21"},
    )
    assert p.url("chat", "dep1", False) == (
        "https://r.openai.azure.com/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
    )
    assert p.headers()["api-key"] == "az" and "model" not in p.transform_request(
        "chat", REQ, "dep1"
    )


def test_anthropic_request_and_response() -> None:
    p = build("anthropic", api_key="k")
    body = p.transform_request("chat", REQ, "claude-x")
    assert body["system"] == "Be brief." and body["max_tokens"] == 50
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "f",
        "input": {"a": 1},
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    resp = p.transform_response(
        "chat",
        {
            "id": "m",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 3, "output_tokens": 4},
        },
        "claude-x",
    )
    assert resp["choices"][0]["finish_reason"] == "length" and resp["usage"]["total_tokens"] == 7


async def test_anthropic_stream_decoding_and_cut() -> None:
    p = build("anthropic", api_key="k")
    evs = [
        (
            None,
            json.dumps(
                {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5}}}
            ),
        ),
        (
            None,
            json.dumps(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                }
            ),
        ),
        (
            None,
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 2},
                }
            ),
        ),
    ]
    acc = Accumulator()
    with pytest.raises(StreamCut):
        async for c in p.decode_stream(events(evs), "m"):
            acc.feed(c)
    assert "".join(acc.text) == "Hi"
    acc = Accumulator()
    async for c in p.decode_stream(events([*evs, (None, '{"type": "message_stop"}')]), "m"):
        acc.feed(c)
    assert acc.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_gemini_request_and_response() -> None:
    p = build("gemini", api_key="g")
    body = p.transform_request(
        "chat", {**REQ, "response_format": {"type": "json_object"}}, "gemini-2.0-flash"
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"][1]["parts"][0]["functionCall"] == {"name": "f", "args": {"a": 1}}
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "f"
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert p.url("chat", "gemini-2.0-flash", True).endswith(":streamGenerateContent?alt=sse")
    resp = p.transform_response(
        "chat",
        {
            "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1},
        },
        "g",
    )
    assert resp["choices"][0]["message"]["content"] == "ok" and resp["usage"]["total_tokens"] == 3


def test_bedrock_converse_request_and_response() -> None:
    p = build("bedrock", api_key="secret", options={"access_key_id": "AKID", "region": "eu-west-1"})
    assert p.url("chat", "anthropic.claude-3:0", False) == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3%3A0/converse"
    )
    body = p.transform_request("chat", REQ, "m")
    assert body["system"] == [{"text": "Be brief."}] and body["inferenceConfig"]["maxTokens"] == 50
    assert body["messages"][1]["content"][0]["toolUse"]["input"] == {"a": 1}
    assert body["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "c1"
    resp = p.transform_response(
        "chat",
        {
            "output": {
                "message": {"content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1, "outputTokens": 2},
        },
        "m",
    )
    assert resp["choices"][0]["finish_reason"] == "tool_calls"
    request = p._request("chat", REQ, "m", stream=False)
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")


def test_sigv4_matches_the_aws_get_vanilla_example() -> None:
    added = sign_v4(
        method="GET",
        host="example.amazonaws.com",
        path="/",
        query="",
        headers={},
        body=b"",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
    )
    assert added["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_anthropic_client_side_round_trip() -> None:
    req = from_anthropic_request(
        {
            "model": "m",
            "max_tokens": 9,
            "system": "S",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"q": 1}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}],
                },
            ],
        }
    )
    assert [m["role"] for m in req["messages"]] == ["system", "user", "assistant", "tool"]
    resp = replay_as_chunks(
        {
            "id": "x",
            "model": "m",
            "choices": [{"message": {"content": "yo"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        }
    )
    enc = AnthropicStreamEncoder("m", "msg_1")
    types = [e["type"] for c in resp for e in enc.feed(c)] + [e["type"] for e in enc.end()]
    assert types == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    out = to_anthropic_response(
        {"choices": [{"message": {"content": "a"}, "finish_reason": "length"}]}, "m"
    )
    assert out["stop_reason"] == "max_tokens"
