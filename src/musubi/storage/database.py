"""The database handle: one async engine and its sessions, owned by the app (no globals).

``async with db.transaction() as session:`` is the unit of work: everything done in the
block, the change and its audit event alike, commits together or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from musubi.context import in_system_scope
from musubi.storage import changes as _changes  # noqa: F401 (its listeners record changes)
from musubi.storage import values
from musubi.storage.private import private_file
from musubi.storage.scoping import TenantSession
from musubi.storage.sqlite_inline import connector

__all__ = ["Database", "insert_ignoring_conflicts"]

SQLITE_BUSY_TIMEOUT_S = 5.0


class Database:
    def __init__(
        self,
        url: str,
        *,
        owner_url: str | None = None,
        audit_signer: object = None,
        echo: bool = False,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            path = url.split("///", 1)[-1] or ":memory:"
            if path != ":memory:":
                _private_sqlite(Path(path))
            kwargs["async_creator"] = connector(path, busy_timeout_s=SQLITE_BUSY_TIMEOUT_S)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # PostgreSQL with two roles (see musubi.storage.rls): the schema owner migrates and
        # does the system-scope work; everything bound to a tenant runs as ``url``'s role.
        self.owner_engine: AsyncEngine = self.engine
        if owner_url and owner_url != url and not self.is_sqlite:
            self.owner_engine = create_async_engine(owner_url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        # Shared by every session (each copies the references): the audit signer, and
        # the heads this process committed (musubi.audit.service checks rollbacks with it).
        self.session_info: dict[str, Any] = {
            "audit_signer": audit_signer,
            "audit_heads_seen": {},
        }
        for engine in {self.engine, self.owner_engine}:
            values.install(engine.sync_engine)
        self._sessions, self._system_sessions = (
            async_sessionmaker(
                engine,
                sync_session_class=TenantSession,
                expire_on_commit=False,
                info=self.session_info,
            )
            for engine in (self.engine, self.owner_engine)
        )
        # SQLite has one writer at a time; queueing writers here avoids "database is locked"
        # when two transactions of this process would both upgrade to a write lock.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def two_roles(self) -> bool:
        return self.owner_engine is not self.engine

    def _session(self) -> AsyncSession:
        factory = self._system_sessions if in_system_scope() else self._sessions
        return factory()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: commit on success, roll back on any error."""
        if self._write_lock is not None:
            async with self._write_lock, self._session() as session, session.begin():
                yield session
        else:
            async with self._session() as session, session.begin():
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only (no lock taken on SQLite)."""
        async with self._session() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.two_roles:
            await self.owner_engine.dispose()


def _private_sqlite(path: Path) -> None:
    """The database file and its WAL companions, private to this user (SQLite gives the
    -wal and -shm files the database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            private_file(extra)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The driver's own implicit transactions are off (isolation_level=None); begin here
        # so SQLAlchemy's transaction is SQLite's transaction.
        conn.exec_driver_sql("BEGIN")


def insert_ignoring_conflicts(session: AsyncSession, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the session's dialect. Each dialect's module
    is imported when first used: PostgreSQL's costs ~2 MB in a server running on SQLite."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()
