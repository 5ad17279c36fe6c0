"""The processes of ``musubi worker``: each opens the composition root and runs one loop.

They sit above :mod:`musubi.runtime` (which builds the state from the domain packages:
the job queue, the gateway, the orchestrator) and below the CLI that starts them, so the
domain packages never import the composition root back. What each loop does stays in its
package: batch jobs and the sweep in :mod:`musubi.batch.worker`, fine-tuning in
:mod:`musubi.finetune.worker`, runs in :mod:`musubi.orchestrator.runner`.

* :func:`run_batch_worker`: batch jobs from the Redis queue (arq), on any host; with
  ``MUSUBI_ORCHESTRATOR_RUNS_IN=worker`` it drives orchestrator runs as well. The state is
  opened before arq's ``Worker`` so that arq polls through the process's one Redis pool
  (``AppState.redis``); arq's own close disconnects that pool as it stops, and the state's
  close after it is then a no-op for Redis.
* :func:`run_runs_worker`: orchestrator runs only (``MUSUBI_ORCHESTRATOR_RUNS_IN=worker``
  without Redis). The runs table is the queue: a run is a row, created ``queued`` in the
  transaction that accepts it; every worker sweeps for queued or running runs whose lease
  is free or ran out and claims one with a conditional ``UPDATE`` (so exactly one drives
  it), renewing the lease while it works. A worker killed with SIGKILL stops renewing;
  another takes the run over once the lease runs out: a ``done`` step is never called
  again, the interrupted step is retried. The API processes only create, approve and
  cancel runs (a cancel reaches the driving worker at its next renewal). This is the
  database kind of the batch job queue (:class:`musubi.batch.queue.DatabaseQueue`)
  applied to runs.
* :func:`run_finetune_worker`: fine-tuning jobs from the database, one at a time
  (:class:`musubi.finetune.worker.FineTuneWorker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from musubi.runtime import open_gateway, open_state
from musubi.settings import Settings

__all__ = ["run_batch_worker", "run_finetune_worker", "run_runs_worker"]

log = logging.getLogger("musubi.worker")


async def run_batch_worker(
    settings: Settings, *, max_jobs: int = 8, job_timeout_s: float = 600.0, sweep_s: float = 30.0
) -> None:
    if not settings.redis_url:
        raise SystemExit("musubi worker needs MUSUBI_REDIS_URL (and MUSUBI_QUEUE=redis on the API)")
    from arq.worker import Worker, func

    from musubi.batch.queue import RedisQueue, arq_redis
    from musubi.batch.runner import BatchRunner
    from musubi.batch.worker import run_batch_job, sweep_jobs, wait_for_redis

    state = await open_state(settings, announce=False)
    assert state.redis is not None  # MUSUBI_REDIS_URL is set
    try:
        await wait_for_redis(state.redis)
    except BaseException:
        await state.close()
        raise
    queue = RedisQueue(state.redis)

    async def startup(ctx: dict[str, Any]) -> None:
        state.gateway = open_gateway(state)
        ctx["state"] = state
        ctx["runner"] = BatchRunner(
            state.db,
            state.gateway,
            state.quotas,
            state.ledger,
            concurrency=settings.batch_concurrency,
        )
        ctx["sweeper"] = asyncio.create_task(sweep_jobs(queue, ctx, sweep_s))
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


async def run_runs_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Drive runs until SIGTERM or SIGINT (or ``stop``); unfinished runs stay queued."""
    from musubi.orchestrator.runner import open_orchestrator

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    state = await open_state(settings, announce=False)
    state.gateway = open_gateway(state)
    orch = await open_orchestrator(state, drive=True)
    log.info("musubi worker: driving orchestrator runs (%s)", orch.worker)
    try:
        await stop.wait()
    finally:
        await orch.close()  # leases released: another worker takes the runs up at once
        await state.close()


async def run_finetune_worker(settings: Settings, *, poll_s: float = 1.0) -> None:
    from musubi.finetune.worker import FineTuneWorker

    state = await open_state(settings, announce=False)
    worker = FineTuneWorker(state.db, settings)
    log.info("musubi worker: fine-tuning jobs from the database, as %s", worker.name)
    try:
        await worker.run_forever(poll_s)
    finally:
        await state.close()
