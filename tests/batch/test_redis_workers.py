"""The Redis queue: ``musubi worker`` processes run batches; one killed with SIGKILL
mid-batch is replaced and the batch completes with no line lost and no line that had
succeeded sent upstream again (counted at the fake upstream). And on PostgreSQL, where
workers on several hosts meet: jobs ending together close their batch once, a batch
whose closing worker died is closed by the sweep, and two cancels at once both succeed."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis.asyncio as redis
from sqlalchemy import select, update

from musubi.batch.models import BatchJob
from musubi.batch.runner import BatchRunner
from musubi.batch.service import close_stranded
from musubi.context import bind_tenant
from musubi.settings import Settings
from tests.batch.conftest import chat_lines, until
from tests.batch.test_sdk_batch import wait_done
from tests.batch.workers import start_worker, stop
from tests.conftest import Api, _pg_param
from tests.gateway.fakes import FakeUpstream

REDIS_URL = "redis://127.0.0.1:6379/7"  # a database of its own, flushed around each test


pytestmark = pytest.mark.slow  # kills and restarts worker processes


@pytest.fixture(params=[_pg_param()])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # workers are other processes: they share PostgreSQL


@pytest.fixture
async def settings(database_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    client = redis.Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield Settings(
        home=tmp_path / "home",
        database_url=database_url,
        bootstrap_key=None,
        redis_url=REDIS_URL,
        queue="redis",
    )
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "workers.log"
    yield path
    if path.exists():
        print(path.read_text()[-5000:])  # shown when the test fails


async def settled(fake: FakeUpstream, quiet_s: float = 0.5) -> None:
    """Until every request the fake received is held at its gate and none came for
    ``quiet_s``: a request still in the fake's latency when the worker dies would be
    answered after that (to a worker no longer there) and then sent again by the next."""
    async with asyncio.timeout(30):
        while True:
            seen = len(fake.requests)
            await asyncio.sleep(quiet_s)
            if len(fake.requests) == seen and fake.inflight == fake.held:
                return


async def test_a_worker_killed_mid_batch_is_replaced_without_loss_or_duplicates(
    sdk: openai.AsyncOpenAI, settings: Settings, wired: tuple[FakeUpstream, str], log: Path
) -> None:
    fake, _ = wired
    fake.latency = 0.05
    fake.gate = asyncio.Event()
    fake.gate.set()
    first = start_worker(settings, log, "--max-jobs", "2", "--job-timeout", "8", "--sweep", "2")
    second = None
    try:
        uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(600)), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await until(lambda: len(fake.answered) >= 200, within=60)
        fake.gate.clear()  # hold what is sent from now on: in flight when the worker dies
        await until(lambda: fake.held > 0)
        await settled(fake)  # and answers already delivered get stored
        stored = (await sdk.batches.retrieve(batch.id)).request_counts
        assert stored is not None and stored.completed == len(fake.answered)
        first.send_signal(signal.SIGKILL)
        first.wait()
        in_flight = fake.held
        fake.gate.set()
        second = start_worker(
            settings, log, "--max-jobs", "2", "--job-timeout", "8", "--sweep", "2"
        )
        done = await wait_done(sdk, batch.id, within=120)
        second.send_signal(signal.SIGTERM)  # a deployment stopping a pod: a clean exit
        assert second.wait(15) == 0
    finally:
        for proc in (first, second):
            if proc is not None:
                stop(proc)
    assert done.status == "completed"  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (600, 600, 0)
    output = (await sdk.files.content(done.output_file_id)).text.splitlines()  # type: ignore[attr-defined]
    assert sorted(json.loads(x)["custom_id"] for x in output) == sorted(
        f"req-{i}" for i in range(1, 601)
    )

    def question(body: dict[str, object]) -> str:
        return str(body["messages"][0]["content"])  # type: ignore[index]

    answered = Counter(question(b) for b in fake.answered)
    assert len(answered) == 600 and max(answered.values()) == 1, "a line was answered twice"
    dropped = {question(b) for b in fake.dropped}
    assert in_flight > 0 and len(dropped) == in_flight  # what was in flight at the kill...
    sent = Counter(question(b) for _, b, _ in fake.requests)
    resent = {q for q, n in sent.items() if n > 1}
    assert resent == dropped  # ...and only that was sent again


async def test_a_worker_killed_beside_a_live_one_loses_and_repeats_nothing_more(
    sdk: openai.AsyncOpenAI, settings: Settings, wired: tuple[FakeUpstream, str], log: Path
) -> None:
    """Two workers share one batch; one is SIGKILLed while the other keeps running (no
    replacement): its jobs go to the survivor, which is already busy with jobs of the same
    batch. No line is lost or answered twice, and only what the killed worker had in flight
    is sent again (the documented limit, docs/batch.md "Exactly-once effects")."""
    fake, _ = wired
    fake.latency = 0.05
    fake.gate = asyncio.Event()
    fake.gate.set()
    args = ("--max-jobs", "2", "--job-timeout", "8", "--sweep", "2")
    victim, survivor = start_worker(settings, log, *args), start_worker(settings, log, *args)
    try:
        batch_id = await new_batch(sdk, 600)
        await until(lambda: len(fake.answered) >= 150, within=60)
        fake.gate.clear()
        await until(lambda: fake.held > 0)
        await settled(fake)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        await asyncio.sleep(0.5)  # the killed worker's connections are closed at the fake
        fake.gate.set()
        done = await wait_done(sdk, batch_id, within=120)
    finally:
        for proc in (victim, survivor):
            stop(proc)
    assert done.status == "completed"  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (600, 600, 0)

    def question(body: dict[str, object]) -> str:
        return str(body["messages"][0]["content"])  # type: ignore[index]

    answered = Counter(question(b) for b in fake.answered)
    assert len(answered) == 600 and max(answered.values()) == 1, "a line was answered twice"
    dropped = {question(b) for b in fake.dropped}
    assert dropped, "the killed worker had nothing in flight: the try did not happen"
    sent = Counter(question(b) for _, b, _ in fake.requests)
    assert {q for q, n in sent.items() if n > 1} == dropped
    assert max(sent.values()) <= 2


async def test_redis_flushed_mid_batch_loses_nothing_and_repeats_nothing(
    sdk: openai.AsyncOpenAI, settings: Settings, wired: tuple[FakeUpstream, str], log: Path
) -> None:
    """docs/batch.md: "even a flushed Redis loses nothing". The queue's Redis is flushed
    (a restart without persistence) while a worker is mid-batch: the sweep offers the
    unfinished jobs again, and the job still running must not run twice beside itself."""
    fake, _ = wired
    fake.latency = 0.05
    fake.gate = asyncio.Event()
    fake.gate.set()
    worker = start_worker(settings, log, "--max-jobs", "4", "--job-timeout", "30", "--sweep", "1")
    try:
        batch_id = await new_batch(sdk, 400)
        await until(lambda: len(fake.answered) >= 60, within=60)
        fake.gate.clear()  # the jobs are surely running while Redis is flushed
        await until(lambda: fake.held > 0)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        await asyncio.sleep(3)  # three sweeps offer the unfinished jobs again
        assert len(fake.answered) < 400
        fake.gate.set()
        done = await wait_done(sdk, batch_id, within=120)
    finally:
        stop(worker)
    assert done.status == "completed"  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (400, 400, 0)

    def question(body: dict[str, object]) -> str:
        return str(body["messages"][0]["content"])  # type: ignore[index]

    sent = Counter(question(b) for _, b, _ in fake.requests)
    assert len(sent) == 400
    twice = sorted(q for q, n in sent.items() if n > 1)
    assert twice == [], f"{len(twice)} lines sent upstream twice after the flush: {twice[:5]}"


async def new_batch(sdk: openai.AsyncOpenAI, lines: int) -> str:
    uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(lines)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return batch.id


async def test_jobs_of_one_batch_ending_together_close_it(
    api: Api, sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str]
) -> None:
    # no worker runs: this test runs the batch's jobs itself, all at once, as workers on
    # several hosts would. On PostgreSQL each job's last transaction used to count the
    # others as still open, so none of them closed the batch.
    batch_id = await new_batch(sdk, 400)
    await sdk.batches.cancel(batch_id)  # its jobs then end without sending a line
    me = (await sdk.get("/me", cast_to=httpx.Response)).json()
    state = api.state
    assert state.gateway is not None
    runner = BatchRunner(state.db, state.gateway, state.quotas, state.ledger)
    with bind_tenant(me["tenant_id"]):
        async with state.db.read() as s:
            jobs = (await s.scalars(select(BatchJob.id).where(BatchJob.batch_id == batch_id))).all()
    assert len(jobs) == 5  # four of 100 lines and the cancel
    await asyncio.gather(*(runner.run_job(me["tenant_id"], job) for job in jobs))
    done = await sdk.batches.retrieve(batch_id)
    assert done.status == "cancelled"
    assert done.request_counts is not None and done.request_counts.failed == 400


async def test_a_batch_whose_closing_worker_died_is_closed_by_the_sweep(
    api: Api, sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str]
) -> None:
    batch_id = await new_batch(sdk, 150)
    await sdk.batches.cancel(batch_id)
    me = (await sdk.get("/me", cast_to=httpx.Response)).json()
    with bind_tenant(me["tenant_id"]):  # every job done, as a worker that died right after
        async with api.state.db.transaction() as s:
            await s.execute(
                update(BatchJob).where(BatchJob.batch_id == batch_id).values(status="done")
            )
    assert (await sdk.batches.retrieve(batch_id)).status == "cancelling"
    assert await close_stranded(api.state.db) == 1
    done = await sdk.batches.retrieve(batch_id)
    assert done.status == "cancelled" and done.error_file_id
    assert done.request_counts is not None and done.request_counts.failed == 150
    assert await close_stranded(api.state.db) == 0  # once


async def test_two_cancels_of_one_batch_at_once_both_succeed(
    sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str]
) -> None:
    batch_id = await new_batch(sdk, 50)
    first, second = await asyncio.gather(
        sdk.batches.cancel(batch_id), sdk.batches.cancel(batch_id)
    )  # a double click: the second waits for the first and finds the batch cancelling
    assert first.status == second.status == "cancelling"
