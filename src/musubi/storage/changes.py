"""The change feed: how every process learns, within about a second, that what its caches
hold about a tenant (keys, roles, quota policies, provider credentials, gateway config,
SSO policy and sessions) was changed, by any process.

Before, those caches expired every 5 s, so with more tenants than a process calls within
5 s nearly every call reloaded and decrypted them (issue 24: with 1,000 tenants in
rotation a call cost 9x the CPU). Now an entry is kept until its tenant changes:

- **Recording.** A write to a table the caches read from (:data:`WATCHED`) adds one row
  ``(seq, tenant_id)`` to ``cache_changes`` *in the same transaction*, from SQLAlchemy
  events (``after_flush`` for ORM objects, ``do_orm_execute`` for bulk ``update`` and
  ``delete``), so no writer (API route, CLI command, SCIM, bulk import) can forget it, and
  a rolled-back change records nothing. Columns that only note activity
  (:data:`ACTIVITY`) are not changes; a bulk statement that touches only those says so
  with the execution option ``cache_neutral=True``.
- **Reading.** :class:`ChangeFeed` reads the rows after the last one it saw, every
  ``interval`` seconds (one indexed query per process, whatever the number of tenants),
  and calls its subscribers with each changed tenant id (``None``: every tenant).
  PostgreSQL may commit sequence numbers out of order: a number missing below the
  newest seen is read again on later polls, until it appears or ``GAP_WAIT_S`` passes
  (a rolled-back insert leaves a hole for ever).
- **Guarantee.** :class:`~musubi.storage.readthrough.ReadThrough` keeps an entry past its
  short TTL only while the feed has read successfully within ``stale_after`` seconds; a
  process whose feed stops (database unreachable, never started) falls back to the TTL.
  So a change shows on every process within ``interval`` plus one query while the feed
  runs, and within the TTL otherwise.

The database, not Redis pub/sub: it works on SQLite and PostgreSQL alike, with or without
Redis, the record commits atomically with the change it describes, and a process that
was disconnected reads what it missed instead of losing messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, delete, event, func, inspect, select
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from musubi.context import current_tenant_id, in_system_scope, system_scope
from musubi.storage.base import Base, TenantScoped, utcnow
from musubi.storage.scoping import TenantSession

__all__ = ["ACTIVITY", "ALL_TENANTS", "WATCHED", "CacheChange", "ChangeFeed"]

log = logging.getLogger("musubi.storage")

WATCHED = frozenset(
    {
        "tenants",
        "users",
        "api_keys",
        "roles",
        "role_assignments",
        "teams",
        "projects",
        "sso_policies",
        "sso_sessions",
        "scim_groups",
        "scim_members",
        "quota_policies",
        "gateway_credentials",
        "gateway_configs",
    }
)
"""Tables whose rows the request path caches (identity, access, SSO, quotas, gateway)."""

ACTIVITY = frozenset({"updated_at", "last_used_at", "last_seen_at"})
"""Columns that record use, not a change of what is cached."""

ALL_TENANTS = "*"
GAP_WAIT_S = 60.0  # how long a missing sequence number is waited for
KEEP_FOR = timedelta(hours=1)  # rows older than this are deleted


class CacheChange(TenantScoped, Base):
    """One change of a tenant's cached settings (``tenant_id`` ``*``: of every tenant)."""

    __tablename__ = "cache_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


_TABLE = cast(Table, CacheChange.__table__)


def _record(session: Session, tenants: set[str]) -> None:
    if not tenants:
        return
    now = utcnow()
    session.connection().execute(
        _TABLE.insert(), [{"tenant_id": t, "at": now} for t in sorted(tenants)]
    )


def _changed_columns(obj: Any) -> set[str]:
    return {a.key for a in inspect(obj).attrs if a.history.has_changes()}


def _after_flush(session: Session, _flush_context: Any) -> None:
    tenants: set[str] = set()
    for objects, dirty in ((session.new, False), (session.dirty, True), (session.deleted, False)):
        for obj in objects:
            table = getattr(obj, "__tablename__", None)
            if table not in WATCHED:
                continue
            if dirty and not (_changed_columns(obj) - ACTIVITY):
                continue
            tenant = obj.id if table == "tenants" else obj.tenant_id
            if tenant:
                tenants.add(tenant)
    _record(session, tenants)


def _on_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    if state.execution_options.get("cache_neutral"):
        return
    if not any(m.local_table.name in WATCHED for m in state.all_mappers):  # type: ignore[attr-defined]
        return
    tenant = None if in_system_scope() else current_tenant_id()
    _record(state.session, {tenant or ALL_TENANTS})


event.listen(TenantSession, "after_flush", _after_flush)
event.listen(TenantSession, "do_orm_execute", _on_bulk)


Subscriber = Callable[[str | None], None]


class ChangeFeed:
    """Reads ``cache_changes`` every ``interval`` seconds and tells the subscribers.

    ``synced_at`` is when the last successful read started (``-inf`` before the first);
    :meth:`fresh` says whether it is recent enough for caches to rely on the feed.
    """

    def __init__(self, db: Any, *, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self.stale_after = 3 * interval + 2.0  # a few missed polls, then back to TTLs
        self.synced_at = -math.inf
        self._subscribers: list[Subscriber] = []
        self._floor: int | None = None  # every seq up to this one is applied
        self._seen: set[int] = set()
        self._gaps: dict[int, float] = {}  # missing seq -> when first missed
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = -math.inf

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def fresh(self) -> bool:
        return time.monotonic() - self.synced_at <= self.stale_after

    async def start(self) -> None:
        """Read once (so caches rely on the feed from the first request), then poll."""
        with contextlib.suppress(Exception):
            await self.poll()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:  # the caches fall back to their TTL until a read succeeds
                log.warning("reading the cache change feed failed", exc_info=True)

    async def poll(self) -> None:
        started = time.monotonic()
        with system_scope():
            async with self.db.read() as s:
                if self._floor is None:  # first read: recent rows may still be filling in
                    top = await s.scalar(select(func.max(CacheChange.seq))) or 0
                    self._floor = max(top - 1000, 0)
                    self._seen = set()
                query = select(CacheChange.seq, CacheChange.tenant_id)
                rows = (
                    await s.execute(query.where(CacheChange.seq > self._floor).order_by("seq"))
                ).all()
            if started - self._pruned_at > 600:
                self._pruned_at = started
                await self._prune()
        changed: set[str | None] = set()
        for seq, tenant in rows:
            if seq not in self._seen:
                self._seen.add(seq)
                changed.add(None if tenant == ALL_TENANTS else tenant)
        self._advance(started)
        for fn in self._subscribers:
            for tenant in (None,) if None in changed else changed:
                fn(tenant)
        self.synced_at = started

    def _advance(self, now: float) -> None:
        assert self._floor is not None
        top = max(self._seen, default=self._floor)
        for seq in range(self._floor + 1, top):
            if seq not in self._seen:
                self._gaps.setdefault(seq, now)
        for seq, since in list(self._gaps.items()):
            if seq in self._seen:
                del self._gaps[seq]
            elif now - since >= GAP_WAIT_S:  # rolled back: never coming
                del self._gaps[seq]
                self._seen.add(seq)
        self._floor = min(self._gaps) - 1 if self._gaps else top
        self._seen = {s for s in self._seen if s > self._floor}

    async def _prune(self) -> None:
        with system_scope():
            async with self.db.transaction() as s:
                await s.execute(delete(CacheChange).where(CacheChange.at < utcnow() - KEEP_FOR))
