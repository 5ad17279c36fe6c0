"""What the app owns for its lifetime (no module globals): built in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from musubi.audit.failures import FailedAuthLog
from musubi.audit.signing import Signer
from musubi.identity.auth import Authenticator
from musubi.quotas import Quotas
from musubi.settings import Settings
from musubi.storage.database import Database
from musubi.usage import UsageLedger

if TYPE_CHECKING:
    from musubi.batch.queue import JobQueue
    from musubi.gateway.pipeline import Gateway

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    signer: Signer
    auth: Authenticator
    quotas: Quotas
    ledger: UsageLedger
    auth_failures: FailedAuthLog
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
        await self.auth_failures.flush()
        await self.quotas.store.close()
        await self.db.dispose()
