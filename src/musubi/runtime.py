"""The composition root: what the app owns for its lifetime (no module globals), and
:func:`open_state`, which opens it from :class:`~musubi.settings.Settings` alone: the
server's lifespan, ``musubi worker``, the MCP server and every management command start
here, and the web package (:mod:`musubi.api`) only adapts it to HTTP.

Below the web package, so that a CLI command or the worker opens the database without
importing the web application (its routers, the gateway, the batch runner).

With ``MUSUBI_REDIS_URL`` set, the state holds the process's one Redis client
(:mod:`musubi.storage.redis_client`): the quota store made here, and the gateway's cache
and coalescer and the job queue made from this state, all take it, and :meth:`AppState.close`
closes it once, after every user of it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from musubi.audit.failures import FailedAuthLog
from musubi.audit.service import register_tenants
from musubi.audit.signing import Signer
from musubi.audit.verify import has_signed_heads
from musubi.errors import AuditIntegrityError
from musubi.identity.bootstrap import bootstrap
from musubi.quotas import Quotas
from musubi.quotas.store import MemoryStore, RateLimitStore, RedisStore
from musubi.settings import Settings
from musubi.storage.changes import ChangeFeed
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.storage.private import private_dir
from musubi.storage.redis_client import close_redis, open_redis
from musubi.usage import UsageLedger

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from musubi.batch.queue import JobQueue
    from musubi.gateway.pipeline import Gateway
    from musubi.gateway.registry import CredentialSource
    from musubi.identity.auth import Authenticator
    from musubi.orchestrator.runner import Orchestrator

__all__ = [
    "AppState",
    "credential_sources",
    "load_signer",
    "open_gateway",
    "open_state",
    "quota_store",
    "signing_key_path",
]


@dataclass
class AppState:
    settings: Settings
    db: Database
    signer: Signer
    quotas: Quotas
    ledger: UsageLedger
    auth_failures: FailedAuthLog
    gateway: Gateway | None = None  # built in the server's lifespan
    orchestrator: Orchestrator | None = None  # the server's, set in its lifespan
    queue: JobQueue | None = None  # where batch jobs go (MUSUBI_QUEUE)
    index_runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # by project
    changes: ChangeFeed | None = None  # read by the server (see musubi.storage.changes)
    redis: Redis | None = None  # the process's one client, with MUSUBI_REDIS_URL

    @cached_property
    def auth(self) -> Authenticator:
        """Keys and sessions to principals, made on first use: the server and ``musubi mcp``
        authenticate, a management command does not (and so does not import the identity,
        access and SSO services)."""
        from musubi.identity.auth import Authenticator

        return Authenticator(
            self.db,
            ttl=self.settings.auth_cache_seconds,
            feed=self.changes,
            max_items=self.settings.cache_max_entries,
        )

    async def close(self) -> None:
        for task in list(self.index_runs.values()):
            task.cancel()  # its record stays running: resumed on the next start
        if self.index_runs:
            await asyncio.gather(*self.index_runs.values(), return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()
        if self.changes is not None:
            await self.changes.stop()
        if self.gateway is not None:
            await self.gateway.close()
        await self.ledger.stop()
        await self.auth_failures.flush()
        await self.quotas.flush_warnings()
        await self.quotas.store.close()
        if self.redis is not None:  # last: the queue, gateway and quotas above used it
            await close_redis(self.redis)
        await self.db.dispose()


def load_signer(settings: Settings) -> Signer | None:
    """The audit signing key: MUSUBI_AUDIT_SIGNING_KEY, else <home>/audit-signing.pem;
    None when neither is there (:func:`open_state` decides whether one may be made)."""
    if settings.audit_signing_key is not None:
        return Signer.from_pem(settings.audit_signing_key.get_secret_value().encode())
    path = signing_key_path(settings)
    return Signer.from_pem(path.read_bytes()) if path.exists() else None


def signing_key_path(settings: Settings) -> Path:
    return settings.home / "audit-signing.pem"


async def _signer_for(db: Database, settings: Settings, signer: Signer | None) -> Signer:
    """The loaded key; or, for a database with no signed audit head, a new one.

    A missing key with signed heads in the database stops everything: a new key would
    make the whole log read as forged, and replacing it silently would let someone who
    deleted the file start over.
    """
    if signer is not None:
        return signer
    path = signing_key_path(settings)
    if await has_signed_heads(db):
        raise AuditIntegrityError(
            f"the audit signing key is missing: {path} does not exist and "
            "MUSUBI_AUDIT_SIGNING_KEY is not set, but the database holds audit chains "
            "signed with a key. Restore that key (from your backup of MUSUBI_HOME or your "
            "secret store); a new key cannot continue the signed log, so none is made."
        )
    return Signer.create(path)


async def open_state(settings: Settings, *, announce: bool = True) -> AppState:
    """Open the database, migrate, bootstrap: shared by the server and the CLI."""
    private_dir(settings.home)
    loaded = load_signer(settings)
    db = Database(
        settings.effective_database_url, owner_url=settings.database_owner_url, audit_signer=loaded
    )
    try:
        await upgrade(db)
        signer = await _signer_for(db, settings, loaded)
    except BaseException:
        await db.dispose()
        raise
    db.session_info["audit_signer"] = signer
    key = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
    created = await bootstrap(db, key=key, retention_days=settings.audit_retention_days)
    if created is not None and announce:
        shown = created.key or "(taken from MUSUBI_BOOTSTRAP_KEY)"
        print(
            f"musubi: created tenant 'default' ({created.tenant_id}) and its owner.\n"
            f"musubi: owner API key (shown once, store it now): {shown}",
            file=sys.stderr,
            flush=True,
        )
    await register_tenants(db)
    redis = None
    if settings.redis_url:
        redis = open_redis(settings.redis_url, max_connections=settings.redis_max_connections)
    ledger = UsageLedger(db, settings.home / "spool")
    await ledger.start()
    changes = ChangeFeed(db, interval=settings.cache_sync_seconds)  # started by the server
    return AppState(
        settings,
        db,
        signer,
        Quotas(
            db,
            quota_store(redis),
            cache_seconds=settings.auth_cache_seconds,
            feed=changes,
            max_items=settings.cache_max_entries,
        ),
        ledger,
        FailedAuthLog(db, settings.auth_failure_window_seconds),
        changes=changes,
        redis=redis,
    )


def quota_store(redis: Redis | None) -> RateLimitStore:
    """Counters in the shared Redis when there is one (every replica sees them), else
    in this process."""
    return RedisStore(redis) if redis is not None else MemoryStore()


def credential_sources() -> tuple[CredentialSource, ...]:
    """What the gateway adds to a tenant's stored credentials: its fine-tuned adapters
    (server-only kinds, :mod:`musubi.finetune.serving`). Wired here, not in the gateway,
    so that the gateway does not import the fine-tuning package, which builds on it."""
    from musubi.finetune.serving import finetuned_credentials

    return (finetuned_credentials,)


def open_gateway(state: AppState, *, egress: bool = True, feed: bool = False) -> Gateway:
    """The process's gateway, from its state: the Redis client, the operator's egress rules
    (``egress``), the change feed that invalidates routing tables (``feed``, the server),
    and :func:`credential_sources`."""
    from musubi.gateway.pipeline import Gateway

    settings = state.settings
    return Gateway.open(
        state.db,
        settings.home,
        state.redis,
        egress=settings.egress_rules if egress else None,
        feed=state.changes if feed else None,
        sources=credential_sources(),
        max_items=settings.cache_max_entries,
    )
