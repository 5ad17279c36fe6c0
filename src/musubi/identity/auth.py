"""Turn an API key (or a browser session) into a :class:`Principal`, with a short
in-process cache.

Once warmed, a request costs no query: the key's hash, state and permissions are reused
until they change. Changes made through this process invalidate the cache at once
(:meth:`Authenticator.invalidate`); other replicas see them through the change feed
(:mod:`musubi.storage.changes`) within about a second, or within ``ttl`` while their feed
is not reading.
Every failure raises the same :class:`Unauthenticated` with the same message, so a
caller cannot tell an unknown key from a wrong, expired or revoked one; an unknown
prefix is cached like a known one, so neither can it by timing the answer.
A tenant whose SSO policy requires SSO refuses the keys of its human users (service
accounts keep theirs). Sessions (:mod:`musubi.sso.sessions`) are cached the same way,
with idle and absolute expiry checked on every request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.context import system_scope
from musubi.errors import Unauthenticated
from musubi.identity import keys
from musubi.identity.models import ApiKey, User
from musubi.identity.principals import principal_for_key, principal_for_user
from musubi.identity.sign_in import SsoPolicy, SsoSession
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.storage.readthrough import Freshness, ReadThrough
from musubi.storage.tenants import Tenant

__all__ = ["INVALID_KEY", "INVALID_SESSION", "AuthFailure", "Authenticator", "SessionAuth"]

INVALID_KEY = "invalid API key: send a valid, unexpired MUSUBI key as 'Authorization: Bearer msk_…'"
INVALID_SESSION = "no valid session: it expired, was revoked, or never existed; log in again"
_LAST_USED_EVERY = timedelta(minutes=1)
log = logging.getLogger("musubi.identity")


class AuthFailure(Unauthenticated):
    """Carries, for the audit log only, which tenant and why; never shown to the caller."""

    def __init__(
        self, tenant_id: str | None, reason: str, prefix: str | None, message: str = INVALID_KEY
    ) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.reason = reason
        self.prefix = prefix


@dataclass
class _Entry:
    secret_hash: str | None
    key_id: str | None
    tenant_id: str | None
    expires_at: datetime | None
    revoked: bool
    principal: Principal | None
    last_used_at: datetime | None
    refused: str = "user disabled"


@dataclass(frozen=True)
class SessionAuth:
    """A valid browser session: its principal and what the CSRF check needs."""

    principal: Principal
    session_id: str
    csrf_hash: str


@dataclass
class _SessionEntry:
    session_id: str
    tenant_id: str
    csrf_hash: str
    expires_at: datetime
    last_seen_at: datetime
    idle: timedelta
    revoked: bool
    principal: Principal | None


_UNKNOWN = _Entry(
    secret_hash=None,
    key_id=None,
    tenant_id=None,
    expires_at=None,
    revoked=False,
    principal=None,
    last_used_at=None,
    refused="unknown key",
)
"""What an unknown prefix loads. It is cached like a found key (for ``ttl``), so a wrong
secret on an existing prefix and any secret on an unknown one take the same path, the
same constant-time compare and no query: a caller cannot time which prefixes exist."""


class Authenticator:
    def __init__(
        self,
        db: Database,
        ttl: float = 5.0,
        feed: Freshness | None = None,
        *,
        max_items: int = 100_000,  # Settings.cache_max_entries
    ) -> None:
        self.db = db
        self._keys = ReadThrough(self._load, ttl=ttl, feed=feed, max_items=max_items)  # by prefix
        self._sessions = ReadThrough(  # by token digest
            self._load_session, ttl=ttl, feed=feed, max_items=max_items
        )
        self._used: set[str] = set()  # key ids whose last use is to be written
        self._writing: asyncio.Task[None] | None = None

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached keys and sessions (of one tenant, or all), and the unknown
        prefixes (one may be a key just created)."""
        if tenant_id is None:
            self._keys.invalidate()
            self._sessions.invalidate()
        else:
            self._keys.invalidate(lambda _, e: e.tenant_id in (tenant_id, None))
            self._sessions.invalidate(lambda _, e: e.tenant_id == tenant_id)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthFailure(None, "no key sent", None)
        prefix = keys.parse_prefix(token)
        entry = await self._keys.get(prefix) if prefix else None
        if not keys.matches(token, entry.secret_hash if entry else None) or entry is None:
            tenant = entry.tenant_id if entry else None
            raise AuthFailure(tenant, "unknown key" if tenant is None else "wrong secret", prefix)
        if entry.revoked:
            raise AuthFailure(entry.tenant_id, "revoked key", prefix)
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise AuthFailure(entry.tenant_id, "expired key", prefix)
        if entry.principal is None:
            raise AuthFailure(entry.tenant_id, entry.refused, prefix)
        self._note_use(entry)
        return entry.principal

    async def _load(self, prefix: str) -> _Entry:
        with system_scope():
            async with self.db.read() as session:
                key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
                if key is None:
                    return _UNKNOWN  # kept like a known key, so both cost the same
                principal = await principal_for_key(session, key)
                refused = "user disabled"
                if principal is not None and await _sso_required_for(session, key):
                    principal, refused = None, "SSO required for human users"
        return _Entry(
            secret_hash=key.secret_hash,
            key_id=key.id,
            tenant_id=key.tenant_id,
            expires_at=key.expires_at,
            revoked=key.revoked_at is not None,
            principal=principal,
            last_used_at=key.last_used_at,
            refused=refused,
        )

    def _note_use(self, entry: _Entry) -> None:
        """Record last use at most once a minute per key; the keys noted while a write
        runs go together in the next one (cached entries live until changed, so this is
        not left to their reloads; with thousands of tenants, a transaction per key
        would cost more than the calls)."""
        now = utcnow()
        if entry.last_used_at is not None and now - entry.last_used_at < _LAST_USED_EVERY:
            return
        entry.last_used_at = now
        assert entry.key_id is not None
        self._used.add(entry.key_id)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write_uses())

    async def _write_uses(self) -> None:
        while self._used:
            used, self._used = self._used, set()
            try:
                with system_scope():
                    async with self.db.transaction() as session:
                        await session.execute(
                            update(ApiKey)
                            .where(ApiKey.id.in_(sorted(used)))
                            .values(last_used_at=utcnow())
                            .execution_options(cache_neutral=True)  # use, not a change
                        )
            except Exception:  # a missed "last used" is not worth failing a request for
                log.warning("recording the last use of %d keys failed", len(used), exc_info=True)

    async def authenticate_session(self, token: str) -> SessionAuth:
        """The principal of a session cookie; expiry (idle, absolute) and revocation checked."""
        digest = keys.hash_token(token)
        entry = await self._sessions.get(digest)
        if entry is None:
            raise AuthFailure(None, "unknown session", None, INVALID_SESSION)
        now = utcnow()
        reason = None
        if entry.revoked:
            reason = "revoked session"
        elif entry.expires_at <= now:
            reason = "session expired (absolute)"
        elif now - entry.last_seen_at > entry.idle:
            reason = "session expired (idle)"
        elif entry.principal is None:
            reason = "user disabled"
        if reason is not None or entry.principal is None:
            raise AuthFailure(entry.tenant_id, reason or "user disabled", None, INVALID_SESSION)
        if now - entry.last_seen_at >= _LAST_USED_EVERY:
            entry.last_seen_at = now
            with system_scope():
                async with self.db.transaction() as session:
                    await session.execute(
                        update(SsoSession)
                        .where(SsoSession.id == entry.session_id)
                        .values(last_seen_at=now)
                        .execution_options(cache_neutral=True)
                    )
        return SessionAuth(entry.principal, entry.session_id, entry.csrf_hash)

    async def _load_session(self, digest: str) -> _SessionEntry | None:
        with system_scope():
            async with self.db.read() as session:
                row = await session.scalar(
                    select(SsoSession).where(SsoSession.token_hash == digest)
                )
                if row is None:
                    return None
                user = await session.get(User, row.user_id)
                tenant = await session.get(Tenant, row.tenant_id)
                policy = await session.get(SsoPolicy, row.tenant_id)
                principal = None
                if user is not None and tenant is not None:
                    principal = await principal_for_user(
                        session, user, tenant, actor=f"session:{row.id}"
                    )
        return _SessionEntry(
            session_id=row.id,
            tenant_id=row.tenant_id,
            csrf_hash=row.csrf_hash,
            expires_at=row.expires_at,
            last_seen_at=row.last_seen_at,
            idle=timedelta(minutes=policy.idle_minutes if policy else 60),
            revoked=row.revoked_at is not None,
            principal=principal,
        )


async def _sso_required_for(session: AsyncSession, key: ApiKey) -> bool:
    """Whether the key's user is a human in a tenant that requires SSO."""
    policy = await session.get(SsoPolicy, key.tenant_id)
    if policy is None or not policy.require_sso:
        return False
    user = await session.get(User, key.user_id)
    return user is not None and user.kind == "human"
