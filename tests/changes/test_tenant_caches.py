"""What made the gateway's cost independent of the number of tenants (issue 24), pinned:

- a call of a tenant whose cached entries are warm reads none of its settings from the
  database, long after the short TTL that used to expire them (the change feed keeps
  them);
- a revoked key, a new quota policy and a changed provider credential, made through one
  server, take effect on another server sharing the database and Redis within the
  documented time (``cache_sync_seconds``), although its TTL (``auth_cache_seconds``) is
  far longer: only the change feed can have told it;
- a server whose change feed stops reading falls back to the TTL.

Two real servers (uvicorn on loopback) on one database, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from musubi.api.app import create_app
from musubi.runtime import AppState
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import _free_port
from tests.gateway.fakes import FakeUpstream, serve
from tests.loopback import LoopbackServer

REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SYNC_S = 0.3  # cache_sync_seconds of these servers: the documented propagation time
TTL_S = 60.0  # auth_cache_seconds: what propagation would take without the feed
BOUND_S = 3 * SYNC_S + 2.0  # the interval, a slow query and a loaded CI machine
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
SETTINGS_TABLES = re.compile(
    r"\b(api_keys|users|roles|role_assignments|tenants|sso_policies|quota_policies|"
    r"gateway_credentials|gateway_configs)\b"
)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")
    monkeypatch.setenv("MUSUBI_GATEWAY_LOCAL_MODEL", "0")


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[str, AppState]]:
    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = LoopbackServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app.state.musubi
    finally:
        server.stop()
        await task


def _settings(database_url: str, home: Path, key: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "bootstrap_key": key,
        "redis_url": REDIS_URL,
        "auth_cache_seconds": TTL_S,
        "cache_sync_seconds": SYNC_S,
    }
    return Settings(**(values | extra))


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, str, FakeUpstream, str]]:
    first, second = FakeUpstream(name="first"), FakeUpstream(name="second")
    async with serve(first) as url1, serve(second) as url2:
        yield first, url1, second, url2


def _client(base: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


async def _until(check: Any, bound: float) -> float:
    """Seconds until ``await check()`` is true; fails after ``bound``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            raise AssertionError(f"not in effect after {bound:.1f} s")
        await asyncio.sleep(0.05)


def _owner_key() -> str:
    return f"msk_{secrets.token_hex(4)}_{secrets.token_hex(24)}"


async def _setup_tenant(client: httpx.AsyncClient, upstream: str) -> None:
    cred = {"provider": "openai", "api_key": "sk-test-0000000001", "base_url": upstream + "/v1"}
    ok(await client.put("/v1/gateway/providers/openai", json=cred))
    ok(await client.put("/v1/gateway/config", json={"cache": False}))
    limits = {"requests_per_minute": 1000, "tokens_per_minute": 10**9}
    ok(await client.put("/v1/quotas", json={"scope": "tenant", "limits": limits}))


async def test_a_warm_tenant_call_reads_none_of_its_settings(
    database_url: str, tmp_path: Path, upstreams: tuple[FakeUpstream, str, FakeUpstream, str]
) -> None:
    first, url, _, _ = upstreams
    key = _owner_key()
    # a TTL far shorter than the pause below: only the change feed can keep the entries
    settings = _settings(database_url, tmp_path / "home", key, auth_cache_seconds=0.2)
    async with running(settings) as (base, state), _client(base, key) as client:
        await _setup_tenant(client, url)
        await asyncio.sleep(3 * SYNC_S)  # the feed has read the setup's changes
        ok(await client.post("/v1/chat/completions", json=BODY))  # warms key, table, policy
        await asyncio.sleep(1.0)  # five TTLs
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        engines = {state.db.engine.sync_engine, state.db.owner_engine.sync_engine}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", seen)
        try:
            for _ in range(5):
                ok(await client.post("/v1/chat/completions", json=BODY))
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", seen)
        assert first.calls == 6
        reads = [s for s in statements if SETTINGS_TABLES.search(s)]
        assert reads == [], reads


async def test_changes_reach_another_server_within_the_documented_time(
    database_url: str, tmp_path: Path, upstreams: tuple[FakeUpstream, str, FakeUpstream, str]
) -> None:
    first, url1, second, url2 = upstreams
    key = _owner_key()
    home = tmp_path / "home"
    async with (
        running(_settings(database_url, home, key)) as (base_a, _),
        running(_settings(database_url, home, key)) as (base_b, _),
        _client(base_a, key) as a,
        _client(base_b, key) as b,
    ):
        await _setup_tenant(a, url1)
        other = ok(await a.post("/v1/keys", json={"name": "ci"}), 201)
        async with _client(base_b, other["token"]) as b_other:
            ok(await b_other.get("/v1/me"))  # cached on B
            ok(await b.post("/v1/chat/completions", json=BODY))  # B caches table and policy
            assert first.calls == 1

            # a revoked key: refused on B
            ok(await a.delete(f"/v1/keys/{other['key']['id']}"))

            async def refused() -> bool:
                return (await b_other.get("/v1/me")).status_code == 401

            await _until(refused, BOUND_S)

        # a changed provider credential: B's calls go to the new upstream
        cred = {"provider": "openai", "api_key": "sk-test-0000000002", "base_url": url2 + "/v1"}
        ok(await a.put("/v1/gateway/providers/openai", json=cred))

        async def moved() -> bool:
            ok(await b.post("/v1/chat/completions", json=BODY))
            return second.calls > 0

        await _until(moved, BOUND_S)

        # a new quota: B refuses once the limit is reached
        limits = {"requests_per_minute": 1}
        ok(await a.put("/v1/quotas", json={"scope": "tenant", "limits": limits}))

        async def limited() -> bool:
            return (await b.post("/v1/chat/completions", json=BODY)).status_code == 429

        await _until(limited, BOUND_S)


async def test_without_its_feed_a_server_falls_back_to_the_ttl(
    database_url: str, tmp_path: Path
) -> None:
    key = _owner_key()
    home = tmp_path / "home"
    async with (
        running(_settings(database_url, home, key)) as (base_a, _),
        running(_settings(database_url, home, key, auth_cache_seconds=0.5)) as (base_b, b_state),
        _client(base_a, key) as a,
    ):
        other = ok(await a.post("/v1/keys", json={"name": "ci"}), 201)
        async with _client(base_b, other["token"]) as b_other:
            ok(await b_other.get("/v1/me"))
            assert b_state.changes is not None
            await b_state.changes.stop()  # B no longer reads the feed
            ok(await a.delete(f"/v1/keys/{other['key']['id']}"))
            await asyncio.sleep(SYNC_S * 3)

            async def refused() -> bool:
                return (await b_other.get("/v1/me")).status_code == 401

            # once its last read is stale, B's entries live only the TTL again
            await _until(refused, b_state.changes.stale_after + 0.5 + BOUND_S)
