"""The one lease mechanism (:mod:`musubi.storage.leases`), on a real table (fine-tuning
jobs) with two workers: a live lease keeps the other out, only the holder renews, a lease
that ran out is taken over, release requeues, and the single-row conditional claim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from musubi.context import system_scope
from musubi.finetune.models import FineTuneJob
from musubi.runtime import AppState, open_state
from musubi.settings import Settings
from musubi.storage.base import new_id, utcnow
from musubi.storage.leases import Leases
from musubi.storage.tenants import Tenant


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[AppState]:
    state = await open_state(settings, announce=False)
    yield state
    await state.close()


async def _job(state: AppState, status: str = "queued") -> str:
    with system_scope():
        async with state.db.transaction() as s:
            tenant_id = await s.scalar(select(Tenant.id).limit(1))
            assert tenant_id is not None
            job = FineTuneJob(
                tenant_id=tenant_id,
                id=new_id("ftjob"),
                model="m",
                training_file="file-x",
                status=status,
                hyperparameters={},
                method={},
                user_id="u",
                actor="a",
            )
            s.add(job)
    return job.id


async def _claim_due(state: AppState, leases: Leases) -> list[str]:
    """What a queue does: select due rows, locked, and take them."""
    now = utcnow()
    with system_scope():
        async with state.db.transaction() as s:
            query = select(FineTuneJob.id).where(leases.due(now)).order_by(FineTuneJob.id)
            ids = list(await s.scalars(Leases.lock(query, state.db)))
            await leases.take(s, ids, now)
    return ids


async def _row(state: AppState, job_id: str) -> FineTuneJob:
    with system_scope():
        async with state.db.read() as s:
            job = await s.get(FineTuneJob, job_id)
    assert job is not None
    return job


async def _expire(state: AppState, job_id: str) -> None:
    with system_scope():
        async with state.db.transaction() as s:
            await s.execute(
                update(FineTuneJob)
                .where(FineTuneJob.id == job_id)
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )


async def _renew(state: AppState, leases: Leases, job_id: str) -> int:
    with system_scope():
        async with state.db.transaction() as s:
            return await leases.renew(s, [job_id])


async def test_due_rows_are_taken_once_renewed_by_their_holder_and_taken_over_when_lapsed(
    state: AppState,
) -> None:
    a = Leases(FineTuneJob, 30, holder="worker-a")
    b = Leases(FineTuneJob, 30, holder="worker-b")
    job_id = await _job(state)
    await _job(state, status="succeeded")  # not due: never taken

    assert await _claim_due(state, a) == [job_id]
    row = await _row(state, job_id)
    assert (row.status, row.worker, row.attempts) == ("running", "worker-a", 1)
    assert await _claim_due(state, b) == []  # a live lease keeps the other out
    assert await _renew(state, b, job_id) == 0  # not b's
    assert await _renew(state, a, job_id) == 1

    await _expire(state, job_id)  # worker a died
    assert await _claim_due(state, b) == [job_id]
    row = await _row(state, job_id)
    assert (row.status, row.worker, row.attempts) == ("running", "worker-b", 2)
    assert await _renew(state, a, job_id) == 0  # taken over: a must stop

    with system_scope():
        async with state.db.transaction() as s:
            await a.release(s, [job_id], requeue=True)  # not a's: nothing happens
    assert (await _row(state, job_id)).worker == "worker-b"
    with system_scope():
        async with state.db.transaction() as s:
            await b.release(s, [job_id], requeue=True)
    row = await _row(state, job_id)
    assert (row.status, row.worker, row.lease_until) == ("queued", None, None)
    assert await _claim_due(state, a) == [job_id]  # released: due again at once


async def test_a_single_row_claim_is_one_conditional_update(state: AppState) -> None:
    a = Leases(FineTuneJob, 30, holder="worker-a")
    b = Leases(FineTuneJob, 30, holder="worker-b")
    job_id = await _job(state)

    async def claim(leases: Leases) -> bool:
        with system_scope():
            async with state.db.transaction() as s:
                return await leases.claim(s, job_id, FineTuneJob.status == "queued")

    assert await claim(a)
    assert not await claim(b)  # a holds a live lease
    assert await claim(a)  # already a's: renewed
    await _expire(state, job_id)
    assert await claim(b)
    row = await _row(state, job_id)
    assert (row.status, row.worker, row.attempts) == ("queued", "worker-b", 0)  # status kept
    with system_scope():
        async with state.db.transaction() as s:
            await b.release(s, [job_id], requeue=False)
    row = await _row(state, job_id)
    assert (row.status, row.worker, row.lease_until) == ("queued", None, None)
