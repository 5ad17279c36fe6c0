"""Gateway fixtures: fake upstreams on loopback and a MUSUBI server pointed at them.

The end-to-end tests run on SQLite only (the storage layer is tested on both backends
elsewhere); the cross-tenant cases of these routes run on both in tests/api.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.api.helpers import ok
from tests.gateway.fakes import FakeUpstream, serve
from tests.gateway.openai_spec import validate_openai_request


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(name="primary", validate=validate_openai_request)
    async with serve(fake) as url:
        yield fake, url


@dataclass
class Streamed:
    """What an OpenAI SDK chat stream delivered: its text pieces, finish reason, usage."""

    pieces: list[str] = field(default_factory=list)
    finish: str | None = None
    usage: Any = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


async def read_stream(stream: Any) -> Streamed:
    out = Streamed()
    async for c in stream:
        if c.choices:
            out.pieces.append(c.choices[0].delta.content or "")
            out.finish = c.choices[0].finish_reason or out.finish
        if c.usage:
            out.usage = c.usage
    return out


async def set_provider(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(await client.put(f"/v1/gateway/providers/{name}", json=body))
    return result


async def set_config(client: httpx.AsyncClient, **config: Any) -> None:
    ok(await client.put("/v1/gateway/config", json=config))


@pytest.fixture
async def wired(
    owner: httpx.AsyncClient, upstream: tuple[FakeUpstream, str]
) -> tuple[FakeUpstream, str]:
    """The root tenant with an OpenAI and an Anthropic credential, both at the fake."""
    fake, url = upstream
    await set_provider(
        owner, "openai", provider="openai", api_key="sk-test-openai-0001", base_url=f"{url}/v1"
    )
    await set_provider(
        owner, "anthropic", provider="anthropic", api_key="sk-ant-test-0002", base_url=url
    )
    return fake, url
