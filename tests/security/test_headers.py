"""Request heads (request line and headers) are bounded, also for anonymous callers.

Before: a server started as ``musubi serve`` starts it (uvicorn with httptools) accepted
64 MB of headers from anyone, holding all of it in memory (issue 14, finding 9). Now
``musubi serve`` stops reading a head past ``MUSUBI_MAX_HEADER_BYTES`` (64 KiB) and answers
431; the app made by ``create_app`` checks the same limit itself when another server runs
it (here: uvicorn's defaults, as the ``api`` fixture starts it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api
from tests.scaleout.cluster import Cluster, Server

MiB = 1024 * 1024


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Server]:
    """``musubi serve`` in its own process, with SQLite in a fresh MUSUBI_HOME."""
    cluster = Cluster(tmp_path, {"MUSUBI_HOME": str(tmp_path / "home")})
    try:
        server = cluster.serve()
        await cluster.wait_ready(server)
        yield server
    finally:
        cluster.stop()


async def _send_head(url: str, header_bytes: int) -> tuple[bytes, int]:
    """Send a GET whose headers add up to ``header_bytes`` (in 64 KiB packets, as fast as
    the server takes them) until the server answers; returns the answer and the bytes sent."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0

    async def flood() -> None:
        nonlocal sent
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        while sent < header_bytes:
            writer.write(line * 64)
            await writer.drain()
            sent += len(line) * 64
        writer.write(b"\r\n")
        await writer.drain()

    sending = asyncio.create_task(flood())
    try:
        answer = await asyncio.wait_for(reader.read(65536), timeout=20)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
    return answer, sent


async def test_musubi_serve_refuses_huge_headers_with_431(served: Server) -> None:
    answer, _ = await _send_head(served.url, 64 * MiB)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    # Refused while the head was arriving: the server read little more than the limit
    # (what the client sent after the answer was read and dropped, not parsed).
    logged = re.search(r"refused a request head of over (\d+) bytes", served.log())
    assert logged and int(logged[1]) < 1 * MiB, served.log()
    async with httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.get("/healthz")).status_code == 200  # still serving
        normal = {f"x-h{i}": "v" * 500 for i in range(40)}  # 20 KB: fine
        assert (await client.get("/healthz", headers=normal)).status_code == 200


async def test_the_app_refuses_headers_over_its_limit(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        big = {f"x-h{i}": "v" * 1000 for i in range(100)}  # 100 KB, anonymous
        r = await client.get("/v1/me", headers=big)
        assert r.status_code == 431
        err = r.json()["error"]
        assert err["type"] == "request_headers_too_large" and err["request_id"]
        big["authorization"] = f"Bearer {api.owner_key}"  # a valid key changes nothing
        assert (await client.get("/v1/me", headers=big)).status_code == 431
        ok = {"authorization": f"Bearer {api.owner_key}", "x-pad": "v" * 30_000}
        assert (await client.get("/v1/me", headers=ok)).status_code == 200
