"""The job queue kind: who runs a batch's jobs, and where.

A job is a :class:`~musubi.batch.models.BatchJob` row, written in the transaction that
creates its batch, so work is never lost between "accepted" and "queued". Two kinds:

* :class:`DatabaseQueue` (default): workers inside the API process claim jobs from the
  table with a lease they renew; a job whose lease ran out (its process died) is claimed
  again, so a restart resumes unfinished work. Needs nothing but the database.
* :class:`RedisQueue`: jobs are dispatched through arq on Redis to ``musubi worker``
  processes on any host. arq keeps a job in its queue until a worker finishes it; a
  worker that dies (SIGKILL included) leaves it to be picked up again once its
  in-progress mark expires. A sweep re-offers any unfinished job row (arq ignores a job
  id it already holds), so even a flushed Redis loses nothing. arq speaks through the
  process's one Redis pool (:mod:`musubi.storage.redis_client`): its ``ArqRedis`` is a
  ``redis.asyncio.Redis`` subclass, built here on the shared client's connection pool.

Either way a job may run more than once; :class:`~musubi.batch.runner.BatchRunner` makes
that harmless (a stored success is never sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from musubi.batch.models import BatchJob
from musubi.batch.runner import BatchRunner
from musubi.batch.service import JobRef, close_stranded, expire_due
from musubi.context import system_scope
from musubi.errors import InvalidInput
from musubi.kinds import Kind
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.storage.leases import Leases

if TYPE_CHECKING:
    from arq.connections import ArqRedis
    from redis.asyncio import Redis

__all__ = [
    "JOB_QUEUES",
    "DatabaseQueue",
    "JobQueue",
    "QueueContext",
    "RedisQueue",
    "arq_redis",
    "database_queue",
    "redis_queue",
    "unfinished_jobs",
]

log = logging.getLogger("musubi.batch")

EXPIRE_EVERY_S = 60.0  # how often expired batches are stopped and stranded ones closed


class JobQueue(ABC):
    """Where a batch's jobs go once their rows are committed."""

    @abstractmethod
    async def submit(self, jobs: list[JobRef]) -> None:
        """Offer committed jobs to the workers (idempotent: a job offered twice runs once
        at a time, and a finished one not again)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start in-process workers, if this kind has any."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop workers (unfinished jobs stay queued) and release connections."""


async def unfinished_jobs(db: Database, limit: int = 10_000) -> list[JobRef]:
    with system_scope():
        async with db.read() as s:
            rows = await s.execute(
                select(BatchJob.tenant_id, BatchJob.id)
                .where(BatchJob.status != "done")
                .order_by(BatchJob.priority.desc(), BatchJob.created_at)
                .limit(limit)
            )
            return [JobRef(t, j) for t, j in rows.all()]


class DatabaseQueue(JobQueue):
    """In-process workers that claim jobs from the database with renewable leases
    (:mod:`musubi.storage.leases`)."""

    def __init__(
        self,
        db: Database,
        runner: BatchRunner,
        *,
        max_jobs: int = 8,
        lease_s: float = 15.0,  # renewed every poll_s while the job runs
        poll_s: float = 1.0,
    ) -> None:
        self.db, self.runner = db, runner
        self.max_jobs, self.lease_s, self.poll_s = max_jobs, lease_s, poll_s
        self.leases = Leases(BatchJob, lease_s)
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    async def submit(self, jobs: list[JobRef]) -> None:
        self._wake.set()  # the rows are the queue: just look now

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        tasks = [t for t in (self._loop_task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # cancelled jobs keep their lease until it runs out; release it so a restart resumes
        if self._running:
            with system_scope():
                async with self.db.transaction() as s:
                    await self.leases.release(s, list(self._running), requeue=True)

    async def _loop(self) -> None:
        last_expiry = 0.0
        while True:
            try:
                if time.monotonic() - last_expiry > EXPIRE_EVERY_S:
                    last_expiry = time.monotonic()
                    await expire_due(self.db)  # their closing jobs are rows: claimed below
                    await close_stranded(self.db)
                free = self.max_jobs - len(self._running)
                claimed = await self._claim(free) if free > 0 else []
                for job in claimed:
                    task = asyncio.create_task(self._run(job))
                    self._running[job.job_id] = task
                await self._renew()
            except Exception:  # a database hiccup must not stop the workers
                log.exception("batch queue: claiming jobs failed")
                claimed = []
            if not claimed:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as it times out, and stop()/close() would then wait forever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()

    async def _run(self, job: JobRef) -> None:
        try:
            await self.runner.run_job(job.tenant_id, job.job_id)
        except Exception:
            log.exception("batch job %s failed; it will be retried when its lease ends", job.job_id)
        finally:
            self._running.pop(job.job_id, None)
            self._wake.set()

    async def _claim(self, n: int) -> list[JobRef]:
        now = utcnow()
        with system_scope():
            async with self.db.transaction() as s:
                query = (
                    select(BatchJob.tenant_id, BatchJob.id)
                    .where(self.leases.due(now))
                    .order_by(BatchJob.priority.desc(), BatchJob.created_at, BatchJob.id)
                    .limit(n)
                )
                rows = (await s.execute(Leases.lock(query, self.db))).all()
                await self.leases.take(s, [r[1] for r in rows], now)
        return [JobRef(t, j) for t, j in rows]

    async def _renew(self) -> None:
        if not self._running:
            return
        with system_scope():
            async with self.db.transaction() as s:
                await self.leases.renew(s, list(self._running))


def arq_redis(redis: Redis) -> ArqRedis:
    """arq's client on the connection pool of ``redis`` (the process's one client): closing
    it leaves the pool open, for its owner to close."""
    from arq.connections import ArqRedis

    return ArqRedis(redis.connection_pool, default_queue_name=RedisQueue.QUEUE_NAME)


class RedisQueue(JobQueue):
    """Offers jobs to ``musubi worker`` processes through arq (the API side)."""

    QUEUE_NAME = "musubi:batch"
    FUNCTION = "run_batch_job"

    def __init__(self, redis: Redis) -> None:
        self.arq = arq_redis(redis)

    async def submit(self, jobs: list[JobRef]) -> None:
        for job in jobs:  # arq refuses a job id it already holds: offering twice is safe
            await self.arq.enqueue_job(self.FUNCTION, job.tenant_id, job.job_id, _job_id=job.job_id)


@dataclass(frozen=True)
class QueueContext:
    """What a job queue is opened with: the database, the runner of jobs (made only by a
    queue whose workers run in this process) and the process's one Redis client, if any
    (it belongs to the process: a queue uses it and does not close it)."""

    db: Database
    runner: Callable[[], BatchRunner]
    redis: Redis | None = None


JOB_QUEUES: Kind[JobQueue] = Kind("job_queues", JobQueue)
"""Entry points of ``musubi.job_queues``: a callable taking a :class:`QueueContext` that
returns a :class:`JobQueue` (built-ins: ``database``, ``redis``), chosen by MUSUBI_QUEUE."""


def database_queue(ctx: QueueContext) -> JobQueue:
    """The ``database`` entry point: in-process workers leasing rows."""
    return DatabaseQueue(ctx.db, ctx.runner())


def redis_queue(ctx: QueueContext) -> JobQueue:
    """The ``redis`` entry point: arq, for ``musubi worker`` processes."""
    if ctx.redis is None:
        raise InvalidInput("MUSUBI_QUEUE=redis needs MUSUBI_REDIS_URL", field="redis_url")
    return RedisQueue(ctx.redis)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
