"""pgvector on PostgreSQL: the scale-out VectorStore.

Layout (chosen for isolation *and* unfiltered HNSW search): one table per dimension,
``knowledge_vectors_d<dim>`` (``tenant_id``, ``collection``, ``key``, ``embedding``),
LIST-partitioned by ``collection`` — a digest of (tenant, project, embedder). Each collection
is its own partition with its own HNSW index (``vector_cosine_ops``), and a query names its
collection, so the planner prunes to that one partition and the HNSW index is never
post-filtered (pgvector 0.6 has no iterative scans: a filtered HNSW scan on a shared index
would lose recall for small collections). The parent table and every partition have
row-level security keyed on ``musubi.tenant_id`` / ``musubi.system``, the same settings and
rule as the rest of MUSUBI, so a role that is neither superuser nor BYPASSRLS sees only its
tenant's rows even through raw SQL; the store sets them in every transaction.

Search is exact when ``restrict`` is given (a primary-key lookup of the candidates) and HNSW
otherwise (``hnsw.ef_search`` raised to ``k``; a small partition is scanned exactly by the
planner's choice). The interface is synchronous (the indexer and retriever run in threads),
so calls are handed to one event loop in a daemon thread that owns an ``asyncpg`` pool per
URL. Writes go straight through: :meth:`flush` has nothing to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import struct
import threading
from collections.abc import Collection, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from musubi.knowledge.errors import MissingExtra
from musubi.knowledge.vectorstores.base import VectorStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PgVectorStore", "close_pools"]

T = TypeVar("T")
MAX_EF_SEARCH = 1000  # pgvector's bound; above it search is exact
_RULE = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)


class _Loop:
    """One event loop in a daemon thread, owning the pools (asyncpg pools are loop-bound)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pools: dict[str, Any] = {}
        self.lock = asyncio.Lock()
        threading.Thread(target=self.loop.run_forever, name="musubi-pgvector", daemon=True).start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


_LOOP: _Loop | None = None
_LOOP_LOCK = threading.Lock()


def _runner() -> _Loop:
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = _Loop()
        return _LOOP


def _asyncpg() -> Any:
    try:  # untyped: imported by name, so mypy needs no stubs
        return importlib.import_module("asyncpg")
    except ImportError as exc:
        raise MissingExtra("postgres", "asyncpg") from exc


def _encode(vec: Any) -> bytes:
    """pgvector's binary format: dimension, an unused int16, big-endian float32s."""
    import numpy as np

    arr = np.asarray(vec, dtype=">f4")
    return struct.pack(">HH", arr.shape[0], 0) + arr.tobytes()


def _decode(data: bytes) -> Any:
    import numpy as np

    dim = struct.unpack_from(">H", data)[0]
    return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


async def _init_connection(conn: Any) -> None:
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE t.typname = 'vector'"
    )
    await conn.set_type_codec(
        "vector", schema=schema, encoder=_encode, decoder=_decode, format="binary"
    )


async def _pool(url: str) -> Any:
    state = _runner()
    async with state.lock:
        pool = state.pools.get(url)
        if pool is None:
            asyncpg = _asyncpg()
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(url, min_size=0, max_size=4, init=_init_connection)
            state.pools[url] = pool
        return pool


async def _close_all(state: _Loop) -> None:
    async with state.lock:
        pools, state.pools = list(state.pools.values()), {}
    for pool in pools:
        await pool.close()


def close_pools() -> None:
    """Close every pool (tests and shutdown; the next call opens them again)."""
    if _LOOP is not None:
        _LOOP.run(_close_all(_LOOP))


def plain_url(url: str) -> str:
    """``postgresql+asyncpg://`` (SQLAlchemy's spelling) → ``postgresql://`` (asyncpg's)."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


class PgVectorStore(VectorStore):
    """The vectors of one collection: ``tenant_id``'s ``collection`` (project/embedder)."""

    def __init__(self, url: str, dim: int, tenant_id: str, collection: str) -> None:
        super().__init__(dim)
        _asyncpg()
        self.url = plain_url(url)
        self.tenant_id = tenant_id
        self.collection = collection
        self.table = f"knowledge_vectors_d{dim}"
        digest = hashlib.sha256(f"{tenant_id}\0{collection}".encode()).hexdigest()[:32]
        self._cid = digest
        self._partition = f"{self.table}_{digest[:20]}"
        self._ready = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return _runner().run(coro)

    async def _tx(self, work: Any) -> Any:
        """Run ``work(conn)`` in a transaction bound to this store's tenant (RLS)."""
        pool = await _pool(self.url)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('musubi.tenant_id', $1, true),"
                " set_config('musubi.system', 'off', true)",
                self.tenant_id,
            )
            if not self._ready:
                await self._create(conn)
                self._ready = True
            return await work(conn)

    async def _create(self, conn: Any) -> None:
        t, p = self.table, self._partition
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (tenant_id text NOT NULL, collection text NOT NULL,"
            f" key text NOT NULL, embedding vector({self.dim}) NOT NULL,"
            f" PRIMARY KEY (collection, key)) PARTITION BY LIST (collection)"
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops)"
        )
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", p)
        if exists:
            return
        await conn.execute(f"CREATE TABLE {p} PARTITION OF {t} FOR VALUES IN ('{self._cid}')")
        for table in (t, p):
            await _enable_rls(conn, table)

    def upsert(self, keys: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        if len(keys) != len(vectors):
            raise ValueError("keys and vectors differ in length")
        if vectors.ndim != 2 or (len(keys) and vectors.shape[1] != self.dim):
            raise ValueError(f"vectors must be (n, {self.dim})")
        rows = [(self.tenant_id, self._cid, k, v) for k, v in zip(keys, vectors, strict=True)]

        async def work(conn: Any) -> None:
            await conn.executemany(
                f"INSERT INTO {self.table} (tenant_id, collection, key, embedding)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (collection, key)"
                " DO UPDATE SET embedding = EXCLUDED.embedding",
                rows,
            )

        if rows:
            self._run(self._tx(work))

    def delete(self, keys: Collection[str]) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(
                f"DELETE FROM {self.table} WHERE collection = $1 AND key = ANY($2::text[])",
                self._cid,
                list(keys),
            )

        if keys:
            self._run(self._tx(work))

    def keys(self) -> set[str]:
        async def work(conn: Any) -> list[Any]:
            sql = f"SELECT key FROM {self.table} WHERE collection = $1"
            return list(await conn.fetch(sql, self._cid))

        return {row["key"] for row in self._run(self._tx(work))}

    def __len__(self) -> int:
        async def work(conn: Any) -> int:
            sql = f"SELECT count(*) FROM {self.table} WHERE collection = $1"
            return int(await conn.fetchval(sql, self._cid))

        return int(self._run(self._tx(work)))

    def search(
        self, vector: npt.NDArray[np.float32], k: int, restrict: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        if k <= 0 or (restrict is not None and not restrict):
            return []
        order = "embedding <=> $2"
        if restrict is not None:  # exact over the candidates (primary-key lookups)
            sql = (
                f"SELECT key, 1 - ({order}) AS score FROM {self.table}"
                f" WHERE collection = $1 AND key = ANY($4::text[]) ORDER BY {order}, key LIMIT $3"
            )
            args: tuple[Any, ...] = (self._cid, vector, k, list(restrict))
        else:
            # The partition itself, unfiltered: its HNSW index is used at any size (through
            # the parent, a collection filter without statistics makes the planner scan).
            sql = (
                "WITH hits AS MATERIALIZED ("
                f"SELECT key, {order} AS distance FROM {self._partition}"
                f" WHERE $1::text IS NOT NULL ORDER BY {order} LIMIT $3)"
                " SELECT key, 1 - distance AS score FROM hits ORDER BY distance, key"
            )
            args = (self._cid, vector, k)

        async def work(conn: Any) -> list[Any]:
            if restrict is None and k > MAX_EF_SEARCH:
                await conn.execute("SET LOCAL enable_indexscan = off")
            elif restrict is None:
                # A wider beam than k: at ef_search = k recall on 384-d data was poor (33%).
                ef = min(MAX_EF_SEARCH, max(200, 4 * int(k)))
                await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            return list(await conn.fetch(sql, *args))

        return [(row["key"], float(row["score"])) for row in self._run(self._tx(work))]


async def _enable_rls(conn: Any, table: str) -> None:
    has_policy = await conn.fetchval(
        "SELECT count(*) > 0 FROM pg_policies WHERE tablename = $1 AND policyname = "
        "'tenant_isolation'",
        table,
    )
    if has_policy:
        return
    await conn.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    await conn.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    await conn.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({_RULE}) WITH CHECK ({_RULE})"
    )
