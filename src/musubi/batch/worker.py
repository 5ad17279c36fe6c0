"""``musubi worker``: run batch jobs from the Redis queue (arq), on any host.

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
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from musubi.batch.queue import RedisQueue, arq_redis, unfinished_jobs
from musubi.batch.runner import BatchRunner
from musubi.batch.service import close_stranded, expire_due
from musubi.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["run_worker"]

log = logging.getLogger("musubi.worker")


async def run_batch_job(ctx: dict[str, Any], tenant_id: str, job_id: str) -> None:
    from arq import Retry

    runner: BatchRunner = ctx["runner"]
    try:
        await runner.run_job(tenant_id, job_id)
    except Exception as exc:
        log.exception("batch job %s failed; retrying", job_id)
        raise Retry(defer=min(30, 2 ** ctx.get("job_try", 1))) from exc


async def _sweep(queue: RedisQueue, ctx: dict[str, Any], every_s: float) -> None:
    while True:
        try:
            await expire_due(ctx["state"].db)
            await close_stranded(ctx["state"].db)
            await queue.submit(await unfinished_jobs(ctx["state"].db))
        except Exception:
            log.exception("worker: re-offering unfinished jobs failed")
        await asyncio.sleep(every_s)


async def _wait_for(redis: Redis, retries: int = 5, delay_s: float = 1.0) -> None:
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


async def run_worker(
    settings: Settings, *, max_jobs: int = 8, job_timeout_s: float = 600.0, sweep_s: float = 30.0
) -> None:
    if not settings.redis_url:
        raise SystemExit("musubi worker needs MUSUBI_REDIS_URL (and MUSUBI_QUEUE=redis on the API)")
    from arq.worker import Worker, func

    from musubi.gateway.pipeline import Gateway
    from musubi.runtime import open_state

    state = await open_state(settings, announce=False)
    assert state.redis is not None  # MUSUBI_REDIS_URL is set
    try:
        await _wait_for(state.redis)
    except BaseException:
        await state.close()
        raise
    queue = RedisQueue(state.redis)

    async def startup(ctx: dict[str, Any]) -> None:
        state.gateway = Gateway.open(
            state.db, settings.home, state.redis, egress=settings.egress_rules
        )
        ctx["state"] = state
        ctx["runner"] = BatchRunner(
            state.db,
            state.gateway,
            state.quotas,
            state.ledger,
            concurrency=settings.batch_concurrency,
        )
        ctx["sweeper"] = asyncio.create_task(_sweep(queue, ctx, sweep_s))
        if settings.orchestrator_runs_in == "worker":  # runs from the database as well
            from musubi.orchestrator.runner import open_orchestrator

            ctx["orchestrator"] = await open_orchestrator(state, drive=True)
        log.info("musubi worker ready: up to %d jobs at once", max_jobs)

    async def shutdown(ctx: dict[str, Any]) -> None:
        sweeper = ctx.get("sweeper")
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if "orchestrator" in ctx:
            await ctx["orchestrator"].close()
        await queue.close()

    worker = Worker(
        functions=[
            func(run_batch_job, name=RedisQueue.FUNCTION, timeout=job_timeout_s, max_tries=50)
        ],
        queue_name=RedisQueue.QUEUE_NAME,
        redis_pool=arq_redis(state.redis),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=max_jobs,
        keep_result=0,  # a finished job's id may be offered again: run_job sees it is done
        poll_delay=0.05,
        handle_signals=True,
    )
    try:  # async_run, not main: arq's SIGTERM/SIGINT handler cancels the task it sets
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        try:
            await worker.close()
        finally:
            await state.close()
