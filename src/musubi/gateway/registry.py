"""What the gateway owns: providers, catalogue, client pool, cache, coalescer, breakers,
and the per-tenant routing tables built from stored settings (cached, invalidated on
change). Built once by :meth:`GatewayParts.open` in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from musubi.context import bind_tenant
from musubi.egress import EgressRules
from musubi.gateway.breaker import CircuitBreaker
from musubi.gateway.cache import CACHES, MemoryCache, ResponseCache
from musubi.gateway.catalogue import Catalogue
from musubi.gateway.coalesce import Coalescer, MemoryCoalescer, RedisCoalescer
from musubi.gateway.providers.base import ClientPool, Credential
from musubi.gateway.providers.local import MODEL_NAME, local_model_status
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.router import RoutingTable
from musubi.gateway.secrets import SecretBox
from musubi.gateway.service import get_config, load_credentials
from musubi.storage.database import Database
from musubi.storage.readthrough import Freshness, ReadThrough

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["CredentialSource", "GatewayParts", "ollama_running"]

# More credentials of the bound tenant, read in the session that reads its stored ones
# (e.g. its fine-tuned adapters, musubi.finetune.serving): given by the composition root
# (musubi.runtime.open_gateway), so the gateway imports none of the packages that add them.
CredentialSource = Callable[["AsyncSession"], Awaitable[list[Credential]]]

log = logging.getLogger("musubi.gateway")


def ollama_running(host: str = "127.0.0.1", port: int = 11434, timeout: float = 0.05) -> bool:
    """Whether something listens where Ollama does (a short connect, at start only)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class GatewayParts:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        registry: ProviderRegistry | None = None,
        catalogue: Catalogue | None = None,
        pool: ClientPool | None = None,
        cache: ResponseCache | None = None,
        coalescer: Coalescer | None = None,
        implicit: list[Credential] | None = None,
        sources: Sequence[CredentialSource] = (),
        egress: EgressRules | None = None,
        ttl: float = 5.0,
        feed: Freshness | None = None,
        max_items: int = 100_000,  # tenants whose routing tables are kept
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.box = box
        self.registry = registry or ProviderRegistry()
        self.catalogue = catalogue or Catalogue.builtin()
        self.pool = pool or ClientPool()
        self.cache = cache or MemoryCache()
        self.coalescer = coalescer or MemoryCoalescer()
        self.implicit = implicit or []  # e.g. a detected local Ollama, for every tenant
        self.sources = tuple(sources)  # per tenant, e.g. its fine-tuned adapters
        self.egress = egress or EgressRules()  # the operator's MUSUBI_EGRESS_ALLOW
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.breaker = CircuitBreaker()
        self._tables = ReadThrough(self._load_table, ttl=ttl, feed=feed, max_items=max_items)
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def open(
        cls,
        db: Database,
        home: Path,
        redis: Redis | None = None,
        *,
        egress: EgressRules | None = None,
        feed: Freshness | None = None,
        sources: Sequence[CredentialSource] = (),
        max_items: int = 100_000,
    ) -> Self:
        # Credentials the server sets up itself are trusted: the egress policy, which
        # guards the URLs tenants choose, does not apply to them.
        implicit = []
        if os.environ.get("MUSUBI_GATEWAY_DETECT_OLLAMA", "1") == "1" and ollama_running():
            log.info("Ollama detected on 127.0.0.1:11434; its models are usable without a key")
            implicit.append(Credential(name="ollama-local", provider="ollama", trusted=True))
        if os.environ.get("MUSUBI_GATEWAY_LOCAL_MODEL", "1") == "1":
            path, why = local_model_status()
            if path is not None:  # loaded on its first call, not here
                log.info("offline model %s is usable without a key (%s)", MODEL_NAME, why)
                implicit.append(Credential(name="local", provider="local", trusted=True))
            else:
                log.debug(why)
        # the process's one Redis client (AppState.redis), closed by its owner, not here
        cache = CACHES.build("memory" if redis is None else "redis", redis)
        coalescer: Coalescer = MemoryCoalescer() if redis is None else RedisCoalescer(redis)
        return cls(
            db,
            SecretBox.load(home),
            cache=cache,
            coalescer=coalescer,
            implicit=implicit,
            sources=sources,
            egress=egress,
            feed=feed,
            max_items=max_items,
        )

    async def table(self, tenant_id: str) -> RoutingTable:
        table = await self._tables.get(tenant_id)
        assert table is not None  # a tenant without credentials still has a table
        return table

    async def _load_table(self, tenant_id: str) -> RoutingTable:
        with bind_tenant(tenant_id):
            async with self.db.read() as s:
                creds = await load_credentials(s, self.box)
                config = await get_config(s)
                for source in self.sources:
                    creds += await source(s)  # e.g. the tenant's own adapters
        names = {c.name for c in creds}
        creds += [c for c in self.implicit if c.name not in names]
        return RoutingTable(
            tenant_id,
            config,
            creds,
            self.catalogue,
            self.registry,
            self.pool,
            self.egress.for_tenant(tenant_id),
        )

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget the routing table of one tenant (None: of every tenant)."""
        self._tables.invalidate(None if tenant_id is None else lambda key, _: key == tenant_id)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a short task in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway background task failed", exc_info=task.exception())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.close()
        await self.cache.close()
        await self.coalescer.close()
