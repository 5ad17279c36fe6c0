"""``musubi worker``: run batch jobs from the Redis queue (MUSUBI_QUEUE=redis), orchestrator
runs from the database (MUSUBI_ORCHESTRATOR_RUNS_IN=worker), or, with ``--queue finetune``,
fine-tuning jobs from the database (on a GPU host)."""

from __future__ import annotations

import asyncio

import click

__all__ = ["worker"]


@click.command()
@click.option(
    "--queue",
    type=click.Choice(["batch", "finetune"]),
    default="batch",
    show_default=True,
    help="batch: batch lines from Redis; finetune: fine-tuning jobs, one at a time.",
)
@click.option("--max-jobs", default=8, show_default=True, help="Jobs (line ranges) at once.")
@click.option(
    "--job-timeout",
    default=600.0,
    show_default=True,
    help="Seconds a job may run; a job "
    "whose worker died is offered again this long (+10 s) after it started.",
)
@click.option(
    "--sweep", default=30.0, show_default=True, help="Seconds between re-offers of unfinished jobs."
)
def worker(queue: str, max_jobs: int, job_timeout: float, sweep: float) -> None:
    """Run batch jobs, orchestrator runs or fine-tuning jobs; as many as you like, any host."""
    from musubi.api.logs import configure_logging
    from musubi.blas import set_blas_threads
    from musubi.settings import Settings

    settings = Settings()
    set_blas_threads(settings.blas_threads)  # the offline model may run batch lines here
    configure_logging(settings.log_level)
    if queue == "finetune":
        from musubi.workers import run_finetune_worker

        click.echo("musubi worker: fine-tuning jobs from the database", err=True)
        asyncio.run(run_finetune_worker(settings))
        return
    runs = settings.orchestrator_runs_in == "worker"
    if not settings.redis_url and runs:
        from musubi.workers import run_runs_worker

        click.echo("musubi worker: orchestrator runs from the database", err=True)
        asyncio.run(run_runs_worker(settings))
        return
    from musubi.workers import run_batch_worker

    if not settings.redis_url:
        raise click.UsageError(
            "musubi worker needs MUSUBI_REDIS_URL (and MUSUBI_QUEUE=redis on the API), or "
            "MUSUBI_ORCHESTRATOR_RUNS_IN=worker to drive orchestrator runs"
        )
    click.echo(f"musubi worker: queue on {settings.redis_url}, up to {max_jobs} jobs", err=True)
    asyncio.run(
        run_batch_worker(settings, max_jobs=max_jobs, job_timeout_s=job_timeout, sweep_s=sweep)
    )
