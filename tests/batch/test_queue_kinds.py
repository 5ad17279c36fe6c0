"""The contract every job queue kind keeps, run against both: the in-process database
queue (SQLite) and the Redis queue with a ``musubi worker`` process (PostgreSQL).

Cancel stops a batch and keeps what finished; a tenant's lines in flight never exceed
its limit; a higher-priority batch's lines go first; an oversized upload is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis.asyncio as redis

from musubi.settings import Settings
from tests.batch.conftest import chat_lines, until
from tests.batch.test_sdk_batch import wait_done
from tests.batch.workers import start_worker, stop
from tests.conftest import Api, _pg_param
from tests.gateway.fakes import FakeUpstream

REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture(params=["database", pytest.param("redis", marks=_pg_param().marks)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(kind: str) -> str:
    # the database kind on SQLite (the default install); Redis workers share PostgreSQL
    return "sqlite" if kind == "database" else "postgres"


@pytest.fixture
async def settings(database_url: str, tmp_path: Path, kind: str) -> AsyncIterator[Settings]:
    extra: dict[str, object] = {}
    client = redis.Redis.from_url(REDIS_URL)
    if kind == "redis":
        await client.flushdb()
        extra = {"queue": "redis", "redis_url": REDIS_URL}
    yield Settings(
        home=tmp_path / "home",
        database_url=database_url,
        bootstrap_key=None,
        max_file_bytes=200_000,
        **extra,  # type: ignore[arg-type]
    )
    if kind == "redis":
        await client.flushdb()
    await client.aclose()


@pytest.fixture
def workers(api: Api, settings: Settings, kind: str, tmp_path: Path) -> Iterator[None]:
    if kind != "redis":
        yield
        return
    log = tmp_path / "worker.log"
    proc = start_worker(settings, log, "--sweep", "2")
    try:
        yield
    finally:
        stop(proc)
        print(log.read_text()[-3000:])


async def submit(sdk: openai.AsyncOpenAI, data: bytes, priority: int = 0) -> str:
    uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"priority": str(priority)},
    )
    return batch.id


async def test_cancel_stops_the_batch_and_keeps_what_finished(
    sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str], workers: None
) -> None:
    fake, _ = wired
    fake.gate = asyncio.Event()  # hold every request
    batch_id = await submit(sdk, chat_lines(300))
    await until(lambda: fake.held > 0, within=30)
    cancelling = await sdk.batches.cancel(batch_id)
    assert cancelling.status in ("cancelling", "cancelled")
    fake.gate.set()
    done = await wait_done(sdk, batch_id)
    assert done.status == "cancelled"  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert counts.total == 300 and counts.completed + counts.failed == 300
    assert counts.completed < 300 and counts.completed <= len(fake.answered)
    sent = len(fake.requests)
    await asyncio.sleep(1.5)
    assert len(fake.requests) == sent  # nothing more goes out
    errors = (await sdk.files.content(done.error_file_id)).text.splitlines()  # type: ignore[attr-defined]
    codes = {json.loads(e)["error"]["code"] for e in errors}
    assert codes == {"batch_cancelled"}
    again = await sdk.batches.cancel(batch_id)  # idempotent
    assert again.status == "cancelled"


async def test_a_tenants_lines_in_flight_stay_within_its_limit_and_priority_goes_first(
    sdk: openai.AsyncOpenAI,
    owner: httpx.AsyncClient,
    wired: tuple[FakeUpstream, str],
    workers: None,
) -> None:
    fake, _ = wired
    fake.latency = 0.01
    r = await owner.put("/v1/gateway/config", json={"batch_concurrency": 3})
    assert r.status_code == 200, r.text
    fake.gate = asyncio.Event()  # hold the first lines until both batches are queued
    low = await submit(sdk, chat_lines(60), priority=0)
    await until(lambda: fake.held == 3, within=30)
    high = await submit(sdk, chat_lines(30, start=1001), priority=10)
    await asyncio.sleep(1.0)  # the high-priority job reaches the worker
    fake.gate.set()
    await wait_done(sdk, low)
    await wait_done(sdk, high)
    assert fake.max_inflight == 3
    order = [b["messages"][0]["content"] for b in fake.answered]
    last_high = max(i for i, q in enumerate(order) if int(q.split()[1]) > 1000)
    low_before = sum(1 for q in order[:last_high] if int(q.split()[1]) <= 1000)
    assert low_before <= 10, order  # only the held and already-started low lines ran first


async def test_an_oversized_upload_is_refused_before_it_is_stored(
    api: Api, owner: httpx.AsyncClient, sdk: openai.AsyncOpenAI
) -> None:
    big = chat_lines(3000)  # > max_file_bytes (200,000)
    assert len(big) > 200_000
    r = await owner.post("/v1/files", files={"file": ("big.jsonl", big)}, data={"purpose": "batch"})
    assert r.status_code == 413, r.text
    assert "200000" in r.text or "limit" in r.text
    assert (await sdk.files.list()).data == []
