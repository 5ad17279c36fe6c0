"""Turn an API key into a :class:`Principal`, with a short in-process cache.

Once warmed, a request costs no query: the key's hash, state and permissions are reused
for ``ttl`` seconds. Changes made through this process invalidate the cache at once
(:meth:`Authenticator.invalidate`); other replicas see them within ``ttl``.
Every failure raises the same :class:`Unauthenticated` with the same message, so a
caller cannot tell an unknown key from a wrong, expired or revoked one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from musubi.access.principal import Principal
from musubi.access.service import principal_for_key
from musubi.errors import Unauthenticated
from musubi.identity import keys
from musubi.identity.models import ApiKey
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.tenancy.context import system_scope

__all__ = ["INVALID_KEY", "AuthFailure", "Authenticator"]

INVALID_KEY = "invalid API key: send a valid, unexpired MUSUBI key as 'Authorization: Bearer msk_…'"
_LAST_USED_EVERY = timedelta(minutes=1)


class AuthFailure(Unauthenticated):
    """Carries, for the audit log only, which tenant and why; never shown to the caller."""

    def __init__(self, tenant_id: str | None, reason: str, prefix: str | None) -> None:
        super().__init__(INVALID_KEY)
        self.tenant_id = tenant_id
        self.reason = reason
        self.prefix = prefix


@dataclass
class _Entry:
    secret_hash: str | None
    tenant_id: str | None
    expires_at: datetime | None
    revoked: bool
    principal: Principal | None
    loaded: float
    last_used_at: datetime | None


class Authenticator:
    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[str, _Entry] = {}

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached keys (of one tenant, or all)."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache = {p: e for p, e in self._cache.items() if e.tenant_id != tenant_id}

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthFailure(None, "no key sent", None)
        prefix = keys.parse_prefix(token)
        entry = await self._entry(prefix) if prefix else None
        if not keys.matches(token, entry.secret_hash if entry else None) or entry is None:
            tenant = entry.tenant_id if entry else None
            raise AuthFailure(tenant, "unknown key" if tenant is None else "wrong secret", prefix)
        if entry.revoked:
            raise AuthFailure(entry.tenant_id, "revoked key", prefix)
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise AuthFailure(entry.tenant_id, "expired key", prefix)
        if entry.principal is None:
            raise AuthFailure(entry.tenant_id, "user disabled", prefix)
        return entry.principal

    async def _entry(self, prefix: str) -> _Entry | None:
        now = time.monotonic()
        entry = self._cache.get(prefix)
        if entry is not None and now - entry.loaded < self.ttl:
            return entry
        entry = await self._load(prefix, now)
        if entry is None:
            self._cache.pop(prefix, None)
            return None
        self._cache[prefix] = entry
        if len(self._cache) > 100_000:  # bound memory against key-spraying
            self._cache.clear()
        return entry

    async def _load(self, prefix: str, now: float) -> _Entry | None:
        with system_scope():
            async with self.db.read() as session:
                key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
                if key is None:
                    return None
                principal = await principal_for_key(session, key)
        entry = _Entry(
            secret_hash=key.secret_hash,
            tenant_id=key.tenant_id,
            expires_at=key.expires_at,
            revoked=key.revoked_at is not None,
            principal=principal,
            loaded=now,
            last_used_at=key.last_used_at,
        )
        await self._touch(key)
        return entry

    async def _touch(self, key: ApiKey) -> None:
        """Record last use, at most once a minute per key (not a write per request)."""
        now = utcnow()
        if key.last_used_at is not None and now - key.last_used_at < _LAST_USED_EVERY:
            return
        with system_scope():
            async with self.db.transaction() as session:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
                )
