"""The batch jobs of ``musubi worker``, run from the Redis queue (arq), on any host.

The process itself (opening the state, arq's ``Worker``) is
:func:`musubi.workers.run_batch_worker`, above the composition root (:mod:`musubi.runtime`,
which imports this package); this module holds what arq calls, the sweep and the wait.

Each worker opens the same database and Redis as the API processes, builds its own
gateway (routing, cache and coalescing in Redis, quotas in Redis), and runs up to
``max_jobs`` jobs at once. Every ``sweep_s`` it re-offers unfinished job rows, so work
survives a lost Redis, closes batches whose jobs are all done but that were never closed
(their worker died between the two), and a job whose worker was killed is picked up by another once
its in-progress mark expires (``job_timeout_s`` + 10 s).

The worker's state is opened before arq's ``Worker`` so that arq polls through the
process's one Redis pool (``AppState.redis``) like everything else here; arq's own close
disconnects that pool as it stops, and the state's close after it is then a no-op for Redis.
As arq's own ``create_pool`` did, the worker waits for Redis at start (5 more tries, a
second apart), so a worker started beside its Redis does not exit at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from musubi.batch.queue import RedisQueue, unfinished_jobs
from musubi.batch.runner import BatchRunner
from musubi.batch.service import close_stranded, expire_due

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["run_batch_job", "sweep_jobs", "wait_for_redis"]

log = logging.getLogger("musubi.worker")


async def run_batch_job(ctx: dict[str, Any], tenant_id: str, job_id: str) -> None:
    from arq import Retry

    runner: BatchRunner = ctx["runner"]
    try:
        await runner.run_job(tenant_id, job_id)
    except Exception as exc:
        log.exception("batch job %s failed; retrying", job_id)
        raise Retry(defer=min(30, 2 ** ctx.get("job_try", 1))) from exc


async def sweep_jobs(queue: RedisQueue, ctx: dict[str, Any], every_s: float) -> None:
    while True:
        try:
            await expire_due(ctx["state"].db)
            await close_stranded(ctx["state"].db)
            await queue.submit(await unfinished_jobs(ctx["state"].db))
        except Exception:
            log.exception("worker: re-offering unfinished jobs failed")
        await asyncio.sleep(every_s)


async def wait_for_redis(redis: Redis, retries: int = 5, delay_s: float = 1.0) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    for attempt in range(retries + 1):
        try:
            await redis.ping()
            return
        except (RedisConnectionError, OSError, TimeoutError):
            if attempt == retries:
                raise
            log.warning("Redis is not reachable yet; %d tries left", retries - attempt)
            await asyncio.sleep(delay_s)
