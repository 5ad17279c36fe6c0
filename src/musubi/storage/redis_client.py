"""The one Redis client of a process: opened by the composition root, shared by its users.

With ``MUSUBI_REDIS_URL`` set, :func:`musubi.runtime.open_state` calls :func:`open_redis`
once and keeps the client on :class:`~musubi.runtime.AppState`; the response cache, the
single-flight coalescer, the quota store and the arq job queue (API side and ``musubi
worker``) take that client as a constructor argument instead of a URL, and only
:meth:`AppState.close` closes it. One process therefore has one bounded pool of
connections (``MUSUBI_REDIS_MAX_CONNECTIONS``), one place that decides how to connect, and
one place that says which extra to install when redis-py is missing.

The pool is a *blocking* one: a burst that wants more connections than the bound waits
(up to ``timeout_s``) for one to come back instead of failing or opening connections
without limit. None of its users holds a connection between commands (no pub/sub, no
blocking pops), so waiting is short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from musubi.errors import MissingExtra

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["close_redis", "open_redis"]


def open_redis(url: str, *, max_connections: int, timeout_s: float = 10.0) -> Redis:
    """A client on a new pool of at most ``max_connections`` connections to ``url``."""
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtra("redis", "redis") from exc
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s)
    return Redis(connection_pool=pool)


async def close_redis(client: Redis) -> None:
    """Close the client and disconnect its pool (a client given a pool leaves it open)."""
    await client.aclose(close_connection_pool=True)
