"""Scale-out fixtures: one fresh PostgreSQL database, Redis and a shared MUSUBI_HOME for
several real ``musubi`` processes (see :mod:`tests.scaleout.cluster`).

The database belongs to the non-superuser app role, so row-level security applies to
every process. Redis keys of the tenants made here are deleted afterwards (MUSUBI's keys
embed the tenant id); set MUSUBI_TEST_REDIS_URL to use another Redis.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import (
    ADMIN_URL,
    LOOPBACK_FAKES,
    PG_AVAILABLE,
    create_pg_database,
    drop_pg_database,
)
from tests.scaleout.cluster import Cluster

REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@dataclass
class Deployment:
    """What every process of one test system shares, and the processes themselves."""

    cluster: Cluster
    database_url: str
    redis_url: str
    home: Path
    owner_key: str  # installed as MUSUBI_BOOTSTRAP_KEY: the root tenant's owner


def _bootstrap_key() -> str:
    return f"msk_{secrets.token_hex(4)}_{secrets.token_hex(24)}"


async def _redis_ok(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:
        raise AssertionError(
            f"Redis at {url} is not reachable ({exc}); the scale-out tests need it"
        ) from exc
    finally:
        await client.aclose()


async def _tenant_ids(database_url: str) -> list[str]:
    """Every tenant of the test database, read as the admin (no RLS)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = make_url(database_url).database
    engine = create_async_engine(
        make_url(ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    )
    try:
        async with engine.connect() as conn:
            return [str(x) for x in (await conn.execute(text("SELECT id FROM tenants"))).scalars()]
    finally:
        await engine.dispose()


async def _forget_redis_keys(url: str, tenant_ids: list[str]) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        for tid in tenant_ids:
            keys = [k async for k in client.scan_iter(match=f"*{tid}*", count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """The shared environment; no process is started (see :func:`start_servers`)."""
    if not PG_AVAILABLE and os.environ.get("MUSUBI_REQUIRE_POSTGRES") != "1":
        pytest.skip("no PostgreSQL")
    await _redis_ok(REDIS_URL)
    workdir = tmp_path_factory.mktemp("scaleout")
    home = workdir / "home"
    key = _bootstrap_key()
    database_url = await create_pg_database()
    cluster = Cluster(
        workdir / "logs",
        {
            "MUSUBI_HOME": str(home),
            "MUSUBI_DATABASE_URL": database_url,
            "MUSUBI_REDIS_URL": REDIS_URL,
            "MUSUBI_QUEUE": "redis",  # batches run on `musubi worker` processes
            "MUSUBI_BOOTSTRAP_KEY": key,
            "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
            "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
            "MUSUBI_KNOWLEDGE_EMBEDDER": "hashing",
            "MUSUBI_LOG_LEVEL": "warning",
        },
    )
    try:
        yield Deployment(cluster, database_url, REDIS_URL, home, key)
    finally:
        try:
            cluster.stop()
        finally:
            try:
                await _forget_redis_keys(REDIS_URL, await _tenant_ids(database_url))
            finally:
                await drop_pg_database(database_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None]:
    """A failed scale-out test shows the tail of every process's log."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Deployment):
            report.sections.append(("musubi processes", value.cluster.logs()))
            return
