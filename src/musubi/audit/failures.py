"""Failed logins (and other refusals of unauthenticated callers), audited without letting
an anonymous caller write the log at will.

A wrong secret sent with a real key's prefix names that key's tenant, so every such
request used to append an event to the tenant's chain: anyone could flood it. Failures
are now counted in memory per source (tenant, key prefix, reason, client address) and
window. The first failure of a source in a window is recorded at once; the rest become
one ``auth.failed`` event carrying their ``count`` when the window is flushed (every
window by the server, and at shutdown). A tenant gets at most ``max_sources`` sources per
window; failures beyond them are counted together under one ``many sources`` source.
So a tenant's chain gets at most ``2 * (max_sources + 1)`` failed-login events per
window, whatever the callers send, and every failure is still counted. Other refusals of
a caller with no valid credentials (a body too large or malformed) are counted the same
way, under their own action, in the ``_system`` chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from musubi.audit.service import record
from musubi.context import Actor, bind_actor, system_scope
from musubi.errors import AuditIntegrityError
from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["FailedAuthLog"]

log = logging.getLogger("musubi.audit")

MAX_SOURCES = 10
_MANY = "many sources"


@dataclass
class _Source:
    tenant_id: str
    action: str
    target: str
    reason: str
    client_ip: str | None
    first_at: str = field(default_factory=lambda: utcnow().isoformat())
    last_at: str = ""
    unrecorded: int = 0  # failures after the first, waiting for the flush


class FailedAuthLog:
    """Counts failed logins per source and window; see the module docstring."""

    def __init__(self, db: Database, window_s: float, max_sources: int = MAX_SOURCES) -> None:
        self.db = db
        self.window_s = window_s
        self.max_sources = max_sources
        self._sources: dict[tuple[str, str, str, str, str | None], _Source] = {}
        self._per_tenant: dict[str, int] = {}

    async def note(
        self,
        tenant_id: str,
        target: str,
        reason: str,
        *,
        client_ip: str | None,
        request_id: str | None,
        detail: dict[str, Any],
        action: str = "auth.failed",
    ) -> None:
        """Count one failure; record it now if it is its source's first in this window."""
        key = (tenant_id, action, target, reason, client_ip)
        source = self._sources.get(key)
        if source is None and self._per_tenant.get(tenant_id, 0) >= self.max_sources:
            key = (tenant_id, action, "", _MANY, None)
            source = self._sources.get(key)
        if source is not None:
            source.unrecorded += 1
            source.last_at = utcnow().isoformat()
            return
        self._sources[key] = _Source(*key)
        many = key[3] == _MANY
        if not many:
            self._per_tenant[tenant_id] = self._per_tenant.get(tenant_id, 0) + 1
        detail = {**detail, "reason": f"{_MANY}: {reason}" if many else reason}
        actor = Actor("anonymous", request_id, key[4])
        await self._record(tenant_id, action, key[2], actor, detail)

    async def flush(self) -> int:
        """Record each source's uncounted failures as one event; start a new window.

        Returns how many events were written.
        """
        sources, self._sources, self._per_tenant = self._sources, {}, {}
        written = 0
        for s in sources.values():
            if not s.unrecorded:
                continue
            detail = {
                "reason": s.reason,
                "count": s.unrecorded,
                "first_at": s.first_at,
                "last_at": s.last_at,
                "window_s": self.window_s,
            }
            actor = Actor("anonymous", None, s.client_ip)
            await self._record(s.tenant_id, s.action, s.target, actor, detail)
            written += 1
        return written

    async def _record(
        self, tenant_id: str, action: str, target: str, actor: Actor, detail: dict[str, Any]
    ) -> None:
        try:
            with system_scope(), bind_actor(actor):
                async with self.db.transaction() as s:
                    await record(
                        s,
                        action,
                        target,
                        outcome="denied",
                        detail=detail,
                        tenant_id=tenant_id,
                    )
        except AuditIntegrityError:
            # The login is refused either way; the broken chain is what needs attention.
            log.exception("%s not audited: the tenant's audit chain does not verify", action)
