"""``create_app()``: the ASGI application and everything it owns.

On start (the lifespan) it opens the database, applies migrations, creates the root
tenant and owner key on an empty database (printing the key once), and starts the
daily audit-retention task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from musubi import __version__
from musubi.api.docs import install_docs
from musubi.api.errors import install_error_handlers
from musubi.api.fastpath import FastPath
from musubi.api.mcp.server import McpMount
from musubi.api.metrics import Metrics
from musubi.api.middleware import RequestMiddleware
from musubi.api.openapi import api_routes, install_openapi
from musubi.api.routers import (
    audit,
    batches,
    bulk,
    chat,
    files,
    fine_tuning,
    gateway_anthropic,
    gateway_openai,
    health,
    integrations,
    keys,
    knowledge,
    me,
    pipelines,
    projects,
    providers,
    quotas,
    roles,
    runs,
    scim,
    sdd,
    spend,
    sso,
    sso_saml,
    teams,
    tenants,
    trace_recovery,
    users,
)
from musubi.audit.retention import purge_all
from musubi.batch.queue import JOB_QUEUES, JobQueue, QueueContext
from musubi.batch.runner import BatchRunner
from musubi.integrations.outbox import OutboxWorker
from musubi.orchestrator.runner import open_orchestrator
from musubi.runtime import AppState, open_gateway, open_state
from musubi.settings import Settings
from musubi.web import dashboard_app

__all__ = ["PUBLIC_PATHS", "api_routes", "create_app", "open_state"]

log = logging.getLogger("musubi.api")

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/v1/sso/{tenant}/oidc/login",  # a browser arrives with no credentials
        "/v1/sso/{tenant}/oidc/callback",
        "/v1/sso/{tenant}/saml/metadata",  # SAML: the signed assertion is the credential
        "/v1/sso/{tenant}/saml/login",
        "/v1/sso/{tenant}/saml/acs",
        "/v1/integrations/{integration_id}/webhook",  # the vendor's HMAC signature
        "/v1/integrations/{integration_id}/slack/commands",  # Slack's v0 signature
        "/v1/integrations/{integration_id}/slack/interactions",
        "/v1/integrations/{integration_id}/teams/messages",  # the Bot Framework's JWT
    }
)
"""Routes that need no key. Every other route must declare a permission."""

RETENTION_EVERY_S = 24 * 3600
QUOTA_WARNINGS_EVERY_S = 2.0  # how often the quotas found at 80 % are recorded


async def open_queue(state: AppState) -> JobQueue:
    """The batch job queue of MUSUBI_QUEUE; the database kind runs its workers here."""
    settings = state.settings
    if settings.queue == "redis" and not settings.redis_url:
        raise SystemExit("MUSUBI_QUEUE=redis needs MUSUBI_REDIS_URL")

    def runner() -> BatchRunner:
        assert state.gateway is not None
        return BatchRunner(
            state.db,
            state.gateway,
            state.quotas,
            state.ledger,
            concurrency=settings.batch_concurrency,
        )

    queue = JOB_QUEUES.build(settings.queue, QueueContext(state.db, runner, state.redis))
    await queue.start()
    return queue


async def _retention_loop(state: AppState) -> None:
    while True:
        try:
            await purge_all(state.db, floor_days=state.settings.audit_retention_min_days)
        except Exception:  # keep the loop alive; the error is logged with its trace
            log.exception("audit retention run failed")
        await asyncio.sleep(RETENTION_EVERY_S)


async def _auth_failures_loop(state: AppState) -> None:
    """Close each window of failed logins: their counts become audit events."""
    while True:
        await asyncio.sleep(state.settings.auth_failure_window_seconds)
        try:
            await state.auth_failures.flush()
        except Exception:  # keep the loop alive; the error is logged with its trace
            log.exception("flushing failed-login counts to the audit log failed")


async def _quota_warnings_loop(state: AppState) -> None:
    """Record the quotas that reached 80 % (noted in memory by the calls) as chat alerts."""
    while True:
        await asyncio.sleep(QUOTA_WARNINGS_EVERY_S)
        try:
            await state.quotas.flush_warnings()
        except Exception:  # keep the loop alive; the error is logged with its trace
            log.exception("recording quota warnings failed")


async def start_change_feed(state: AppState) -> None:
    """Forget what this process cached about a tenant when any process changes it."""
    feed = state.changes
    if feed is None:
        return
    auth, quotas, gateway = state.auth, state.quotas, state.gateway

    def changed(tenant_id: str | None) -> None:
        auth.invalidate(tenant_id)
        quotas.invalidate(tenant_id)
        if gateway is not None:
            gateway.invalidate(tenant_id)

    feed.subscribe(changed)
    await feed.start()


def tune_gc(young: int = 20_000) -> None:
    """Freeze what start-up left alive and collect young objects less often.

    A gateway call allocates a few thousand objects that live as long as the call (tens
    of milliseconds upstream); with the default threshold (700) they survive young
    collections, reach the old generation and trigger full collections, each scanning
    every module, route and model object too (~90 ms on this machine, every second or
    so at 800 calls/s). Most garbage here is freed by reference counting; collections
    are only for cycles, which a threshold of 20,000 still finds within a fraction of a
    second under load.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, oldest)


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    """The application. ``fast_path=False`` leaves every call to FastAPI's own routing (the
    fast path's differential test compares the two)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await open_state(settings)
        state.gateway = open_gateway(state, feed=True)
        await start_change_feed(state)
        state.queue = await open_queue(state)
        await knowledge.resume_indexing(state)
        app.state.musubi = state
        app.state.orchestrator = await open_orchestrator(state)
        app.state.integrations = OutboxWorker(state.db, state.gateway.box, settings.egress_rules)
        await app.state.integrations.start()
        if settings.server_gc:
            tune_gc()
        tasks = [
            asyncio.create_task(_retention_loop(state)),
            asyncio.create_task(_auth_failures_loop(state)),
            asyncio.create_task(_quota_warnings_loop(state)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await mcp.close()
            await app.state.integrations.close()
            await app.state.orchestrator.close()
            await state.close()

    app = FastAPI(
        title="MUSUBI API",
        version=__version__,
        description="Specification-driven development with AI, for organisations.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app, PUBLIC_PATHS)
    for module in (
        gateway_openai,  # first: the model-call routes are the hot path (matched in order)
        gateway_anthropic,
        files,
        batches,
        fine_tuning,
        health,
        me,
        tenants,
        teams,
        projects,
        sdd,
        knowledge,
        users,
        keys,
        roles,
        quotas,
        audit,
        sso,
        sso_saml,
        scim,
        providers,
        bulk,
        runs,
        spend,
        integrations,
        chat,
        pipelines,
        trace_recovery,
    ):
        app.include_router(module.router)
    mcp = McpMount(lambda: app.state.musubi, lambda: app.state.orchestrator)
    app.mount("/mcp", mcp)  # MCP over streamable HTTP, with a MUSUBI key
    app.mount("/ui", dashboard_app(app))  # the web dashboard (musubi.web)
    # The last added is the outermost: RequestMiddleware (ids, limits, metrics, the request
    # scope) wraps FastPath, which serves the model-call routes without FastAPI's routing.
    if fast_path:
        app.add_middleware(
            FastPath,
            routes=list(api_routes(app.routes)),
            handlers=app.exception_handlers,
            overrides=app.dependency_overrides,
        )
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_file_bytes=settings.max_file_bytes + 65_536,  # + the multipart framing
        metrics=metrics,
    )
    return app
