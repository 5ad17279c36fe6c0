"""What the app owns for its lifetime (no module globals), and :func:`open_state`, which
opens it: the server's lifespan, ``musubi worker`` and every management command start here.

Kept apart from :mod:`musubi.api.app` so that a CLI command opens the database without
importing the web application (its routers, the gateway, the batch runner).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from musubi.audit.signing import Signer
from musubi.identity.auth import Authenticator
from musubi.identity.bootstrap import bootstrap
from musubi.quotas import Quotas
from musubi.quotas.store import MemoryStore, RateLimitStore, RedisStore
from musubi.settings import Settings
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.usage import UsageLedger

if TYPE_CHECKING:
    from musubi.batch.queue import JobQueue
    from musubi.gateway.pipeline import Gateway

__all__ = ["AppState", "load_signer", "open_state", "quota_store"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    signer: Signer
    auth: Authenticator
    quotas: Quotas
    ledger: UsageLedger
    gateway: Gateway | None = None  # built in the server's lifespan
    queue: JobQueue | None = None  # where batch jobs go (MUSUBI_QUEUE)
    index_runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # by project

    async def close(self) -> None:
        for task in list(self.index_runs.values()):
            task.cancel()  # its record stays running: resumed on the next start
        if self.index_runs:
            await asyncio.gather(*self.index_runs.values(), return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()
        if self.gateway is not None:
            await self.gateway.close()
        await self.ledger.stop()
        await self.quotas.store.close()
        await self.db.dispose()


def load_signer(settings: Settings) -> Signer:
    if settings.audit_signing_key is not None:
        return Signer.from_pem(settings.audit_signing_key.get_secret_value().encode())
    return Signer.load_or_create(settings.home / "audit-signing.pem")


async def open_state(settings: Settings, *, announce: bool = True) -> AppState:
    """Open the database, migrate, bootstrap: shared by the server and the CLI."""
    settings.home.mkdir(parents=True, exist_ok=True)
    signer = load_signer(settings)
    db = Database(settings.effective_database_url, audit_signer=signer)
    await upgrade(db)
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
    ledger = UsageLedger(db, settings.home / "spool")
    await ledger.start()
    return AppState(
        settings,
        db,
        signer,
        Authenticator(db, ttl=settings.auth_cache_seconds),
        Quotas(db, quota_store(settings), cache_seconds=settings.auth_cache_seconds),
        ledger,
    )


def quota_store(settings: Settings) -> RateLimitStore:
    if settings.redis_url:
        return RedisStore(settings.redis_url)
    return MemoryStore()
