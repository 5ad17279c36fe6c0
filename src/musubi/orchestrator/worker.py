"""Runs driven by ``musubi worker`` processes (``MUSUBI_ORCHESTRATOR_RUNS_IN=worker``).

The runs table is the queue: a run is a row, created ``queued`` in the transaction that
accepts it; every worker sweeps for queued or running runs whose lease is free or ran out
and claims one with a conditional ``UPDATE`` (so exactly one drives it), renewing the lease
while it works. A worker killed with SIGKILL stops renewing; another worker takes the run
over once the lease runs out: a ``done`` step is never called again, the interrupted step
is retried. The API processes only create, approve and cancel runs (a cancel reaches the
driving worker at its next renewal). This is the database kind of the batch job queue
(:class:`musubi.batch.queue.DatabaseQueue`) applied to runs; no Redis is needed, and with
``MUSUBI_QUEUE=redis`` the same ``musubi worker`` also runs batch jobs from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from musubi.settings import Settings

__all__ = ["run_runs_worker"]

log = logging.getLogger("musubi.worker")


async def run_runs_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Drive runs until SIGTERM or SIGINT (or ``stop``); unfinished runs stay queued."""
    from musubi.gateway.pipeline import Gateway
    from musubi.orchestrator.runner import open_orchestrator
    from musubi.runtime import open_state

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    state = await open_state(settings, announce=False)
    state.gateway = Gateway.open(state.db, settings.home, state.redis, egress=settings.egress_rules)
    orch = await open_orchestrator(state, drive=True)
    log.info("musubi worker: driving orchestrator runs (%s)", orch.worker)
    try:
        await stop.wait()
    finally:
        await orch.close()  # leases released: another worker takes the runs up at once
        await state.close()
