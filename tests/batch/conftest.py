"""Batch fixtures: the gateway's fake upstream and a server wired to it (SQLite; the
storage layer and cross-tenant cases run on both backends elsewhere)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import openai
import pytest

from tests.conftest import Api
from tests.gateway.conftest import _no_ollama_probe, backend, upstream, wired

__all__ = ["_no_ollama_probe", "backend", "chat_lines", "until", "upstream", "wired"]


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until ``predicate()`` holds (polling), or fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


def chat_lines(n: int, model: str = "gpt-4o-mini", start: int = 1) -> bytes:
    """``n`` distinct chat requests as batch JSONL."""
    out = []
    for i in range(start, start + n):
        body = {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}
        item = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions"}
        out.append(json.dumps(item | {"body": body}))
    return ("\n".join(out) + "\n").encode()


@pytest.fixture
async def sdk(api: Api) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=api.owner_key, max_retries=0)
    try:
        yield client
    finally:
        await client.close()
