"""Apply Alembic migrations programmatically (on start, and ``musubi db upgrade``).

Several processes may start on one database at once (replicas of ``musubi serve``, a
``musubi db upgrade`` beside them). :func:`startup_lock` makes their migrations and their
first-start bootstrap take turns: a PostgreSQL advisory lock, or on SQLite an exclusive
``flock`` on ``<database file>.lock``. Whoever comes second finds the work done.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from musubi.storage.database import Database

__all__ = ["STARTUP_LOCK_KEY", "current_revision", "head_revision", "startup_lock", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")

STARTUP_LOCK_KEY = 0x6D75_7375_6269_0001
"""The PostgreSQL advisory lock id ("musubi" + 1) that start-up work holds."""

_FILE_LOCK_POLL_S = 0.05

_held: ContextVar[frozenset[str]] = ContextVar("musubi_startup_lock", default=frozenset())
"""URLs whose start-up lock this task already holds, so nesting does not wait on itself."""


def _config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


@asynccontextmanager
async def startup_lock(db: Database) -> AsyncIterator[None]:
    """Hold the database's start-up lock (across processes) for the block.

    Wrap whole transactions in it: it is taken before they begin and released after they
    commit, so the next holder sees their result. Re-entering it in the same task is a
    no-op. An in-memory SQLite database belongs to one process and takes no lock.
    """
    key = db.url
    if key in _held.get():
        yield
        return
    token = _held.set(_held.get() | {key})
    try:
        if db.is_sqlite:
            path = db.owner_engine.url.database
            if not path or path == ":memory:":
                yield
            else:
                async with _file_lock(Path(f"{path}.lock")):
                    yield
        else:
            # A transaction-level lock on a connection of its own: ending that transaction
            # (or losing the connection) always releases it, even if the block fails.
            async with db.owner_engine.connect() as conn, conn.begin():
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": STARTUP_LOCK_KEY}
                )
                yield
    finally:
        _held.reset(token)


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``path``, waited for without blocking the event loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_FILE_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


async def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate (as the schema owner), then make row-level security hold for the runtime
    role (:func:`musubi.storage.rls.secure`; PostgreSQL only)."""
    if revision != "head" or await _stored_revision(db) != head_revision():
        from alembic import command  # 10 MB resident: loaded only when there is work

        async with startup_lock(db), db.owner_engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), revision))
    if not db.is_sqlite:
        from musubi.storage.rls import secure

        await secure(db)


_REVISION = re.compile(r"""^(down_)?revision(?:: [^=]+)? = (?:["']([^"']+)["']|None)""", re.M)


def head_revision() -> str:
    """The newest migration's id, read from the migration files (no Alembic import)."""
    ids: set[str] = set()
    parents: set[str] = set()
    for path in (_SCRIPTS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text()):
            if value:
                (parents if down else ids).add(value)
    heads = ids - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have one head, found {sorted(heads)}")
    return heads.pop()


async def _stored_revision(db: Database) -> str | None:
    try:
        async with db.owner_engine.connect() as conn:
            value = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # no table yet: a new database
        return None
    return str(value) if value is not None else None


async def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with db.owner_engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
