"""SQLite for the async engine, run in the event loop's own thread.

aiosqlite hands every call (execute, fetch, commit …) to a worker thread and back, which
costs ~0.8 ms a hop here against ~6 µs for the query itself, and under load each hop also
waits for the GIL. SQLite on local disk answers in microseconds, so MUSUBI runs it inline:
the same aiosqlite API (which SQLAlchemy's dialect expects), without the thread.

The trade-off: a statement that waits for another *process's* write lock blocks the loop
for up to ``busy_timeout``. Writers of this process queue on an asyncio lock
(:class:`~musubi.storage.database.Database`), so only other processes writing the same
file (the CLI while the server runs) can cause that. Deployments with several writers
use PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

__all__ = ["InlineConnection", "connector"]


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection API, with each call made directly in the calling thread."""

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()  # no worker thread to start

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def connector(path: str, busy_timeout_s: float) -> Callable[[], InlineConnection]:
    """An ``async_creator`` for ``create_async_engine``."""

    async def create() -> InlineConnection:
        connect = partial(
            sqlite3.connect,
            path,
            timeout=busy_timeout_s,
            isolation_level=None,  # SQLAlchemy emits BEGIN itself (see database.py)
            check_same_thread=False,
        )
        return await InlineConnection(connect, iter_chunk_size=64)

    return create  # type: ignore[return-value]
