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
otherwise (``hnsw.ef_search`` wider than ``k``; a small partition is scanned exactly by the
planner's choice). The interface is synchronous (the indexer and retriever run in threads),
so calls are handed to one event loop in a daemon thread that owns an ``asyncpg`` pool per
URL.

Loading: upserts are buffered until :meth:`PgVectorStore.flush` (or a read), then written in
one transaction. A small write (a re-index after a one-file change) goes straight into the
maintained HNSW index; a write of :data:`BULK_MIN` rows or more is staged with binary COPY and,
when the partition is new or not much larger than the write, loaded with the index dropped and
rebuilt after (inserting row by row into an HNSW graph costs milliseconds a row at 384-d).
:meth:`PgVectorStore.bulk_load` keeps the index aside across many flushes (a project's first
index) and builds it once at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import struct
import threading
from collections.abc import Collection, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from musubi.errors import InvalidInput
from musubi.knowledge.errors import MissingExtra
from musubi.knowledge.vectorstores.base import StoreLocation, VectorStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PgVectorStore", "close_pools", "default_ef_search", "open_store"]

T = TypeVar("T")
MAX_EF_SEARCH = 1000  # pgvector's bound; above it search is exact
BULK_MIN = 1000  # rows in one write from which they are staged with COPY
REBUILD_FACTOR = 4  # a bulk write rebuilds the index if the partition holds <= 4x its rows
PENDING_BYTES = 128 << 20  # buffered upserts are written before they take more than this
BUILD_MEMORY_MAX_MB = 1024  # maintenance_work_mem ceiling for one index build
HNSW_ROW_OVERHEAD = 1024  # bytes of graph (neighbour lists, element) per row at m = 16
_UPSERT = "ON CONFLICT (collection, key) DO UPDATE SET embedding = EXCLUDED.embedding"
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


def default_ef_search(k: int) -> int:
    """HNSW's beam for ``k`` results: at ef_search = k, recall@100 on 384-d data was poor."""
    return min(MAX_EF_SEARCH, max(200, 4 * int(k)))


class PgVectorStore(VectorStore):
    """The vectors of one collection: ``tenant_id``'s ``collection`` (project/embedder).

    ``ef_search`` fixes HNSW's beam width; by default :func:`default_ef_search` of ``k``.
    """

    def __init__(
        self, url: str, dim: int, tenant_id: str, collection: str, *, ef_search: int | None = None
    ) -> None:
        super().__init__(dim)
        _asyncpg()
        self.url = plain_url(url)
        self.tenant_id = tenant_id
        self.collection = collection
        self.ef_search = ef_search
        self.table = f"knowledge_vectors_d{dim}"
        digest = hashlib.sha256(f"{tenant_id}\0{collection}".encode()).hexdigest()[:32]
        self._cid = digest
        self._partition = f"{self.table}_{digest[:20]}"
        self._index = f"{self._partition}_hnsw"
        self._ready = False
        self._indexed: bool | None = None  # the partition's HNSW index, as last seen
        self._pending: dict[str, Any] = {}  # upserts not yet written (last one per key wins)
        self._pending_max = max(BULK_MIN, PENDING_BYTES // (4 * dim))
        self._loading = 0  # bulk_load() depth
        self._lock = threading.RLock()  # orders this store's writes across threads

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return _runner().run(coro)

    async def _tx(self, work: Any) -> Any:
        """Run ``work(conn)`` in a transaction bound to this store's tenant (RLS)."""
        pool = await _pool(self.url)
        async with pool.acquire() as conn:
            if not self._ready:
                await self._create(conn)
                self._ready = True
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('musubi.tenant_id', $1, true),"
                    " set_config('musubi.system', 'off', true)",
                    self.tenant_id,
                )
                return await work(conn)

    async def _create(self, conn: Any) -> None:
        """The table and this collection's partition, in a transaction of their own: creating
        a partition locks the parent table exclusively, which must not last a whole load."""
        t, p = self.table, self._partition
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (tenant_id text NOT NULL,"
                f" collection text NOT NULL, key text NOT NULL,"
                f" embedding vector({self.dim}) NOT NULL,"
                f" PRIMARY KEY (collection, key)) PARTITION BY LIST (collection)"
            )
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{t}_hnsw"):
                # The first layout had one partitioned HNSW index on the parent, whose
                # per-partition indexes cannot be dropped for a bulk load. Each partition now
                # owns its index and gets it back at its next write.
                await conn.execute(f"DROP INDEX {t}_hnsw")
            await _enable_rls(conn, t)
            if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", p):
                # No index yet: the first write loads the rows, then builds it.
                await conn.execute(
                    f"CREATE TABLE {p} PARTITION OF {t} FOR VALUES IN ('{self._cid}')"
                )
                await _enable_rls(conn, p)
            self._indexed = await self._has_index(conn)

    async def _has_index(self, conn: Any) -> bool:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", self._index))

    def upsert(self, keys: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Buffered until :meth:`flush` (or a read), so that the indexer's small batches
        reach PostgreSQL as one write large enough for the bulk path."""
        import numpy as np

        if len(keys) != len(vectors):
            raise ValueError("keys and vectors differ in length")
        if vectors.ndim != 2 or (len(keys) and vectors.shape[1] != self.dim):
            raise ValueError(f"vectors must be (n, {self.dim})")
        copied = np.array(vectors, dtype=np.float32)  # the caller may reuse its array
        with self._lock:
            self._pending.update(zip(keys, copied, strict=True))
            if len(self._pending) >= self._pending_max:
                # A load too big to hold: written with the index aside; the flush that ends
                # it builds the index once.
                self._write_pending(aside=True)

    def flush(self) -> None:
        """Write what is pending; outside :meth:`bulk_load`, also build a missing index."""
        with self._lock:
            if self._pending or (self._indexed is False and not self._loading):
                self._write_pending()

    @contextmanager
    def bulk_load(self, expected: int | None = None) -> Iterator[None]:
        """Writes inside go into the partition with its HNSW index set aside (searches are
        exact meanwhile); the index is built once, at the end. For a project's first index.

        Given ``expected`` (the rows about to be added), the index is set aside only when a
        bulk write of that many would rebuild it (at least :data:`BULK_MIN` rows, into a
        partition holding at most :data:`REBUILD_FACTOR` times as many); otherwise writes go
        on as usual, so a caller can wrap every run, small re-indexes included.
        """
        if expected is not None and (expected < BULK_MIN or len(self) > REBUILD_FACTOR * expected):
            yield
            self.flush()
            return
        with self._lock:
            self._loading += 1
        try:
            yield
        finally:
            with self._lock:
                self._loading -= 1
                self.flush()

    def _write_pending(self, *, aside: bool = False) -> None:
        """Write the buffer in one transaction (call with ``self._lock`` held).

        Fewer than :data:`BULK_MIN` rows go straight into the maintained HNSW index. More
        are staged with binary COPY into a temporary table (COPY into a table under forced
        RLS is refused for any role that RLS applies to) and moved with one
        ``INSERT … SELECT`` that the policy checks; when the partition is not much larger
        than the write, the index is dropped first and rebuilt after the rows are in, which
        is several times faster than inserting each row into the graph.
        """
        items = list(self._pending.items())
        loading = aside or self._loading > 0

        async def work(conn: Any) -> bool:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._partition)
            indexed = await self._has_index(conn)
            bulk = len(items) >= BULK_MIN
            held = 0
            if bulk or not indexed:
                held = int(await conn.fetchval(f"SELECT count(*) FROM {self._partition}"))
            if indexed and (loading or (bulk and held <= REBUILD_FACTOR * len(items))):
                await conn.execute(f"DROP INDEX {self._index}")
                indexed = False
            if bulk:
                await self._copy(conn, items)
            elif items:
                rows = [(self.tenant_id, self._cid, k, v) for k, v in items]
                await conn.executemany(
                    f"INSERT INTO {self.table} (tenant_id, collection, key, embedding)"
                    f" VALUES ($1, $2, $3, $4) {_UPSERT}",
                    rows,
                )
            if not indexed and not loading:
                await self._build(conn, held + len(items))
                indexed = True
            return indexed

        self._indexed = self._run(self._tx(work))
        self._pending = {}

    async def _copy(self, conn: Any, items: list[tuple[str, Any]]) -> None:
        await conn.execute(
            f"CREATE TEMP TABLE musubi_kv_load (key text NOT NULL,"
            f" embedding vector({self.dim}) NOT NULL) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(
            "musubi_kv_load", records=items, columns=["key", "embedding"]
        )
        await conn.execute(
            f"INSERT INTO {self.table} (tenant_id, collection, key, embedding)"
            f" SELECT $1, $2, key, embedding FROM musubi_kv_load {_UPSERT}",
            self.tenant_id,
            self._cid,
        )

    async def _build(self, conn: Any, rows: int) -> None:
        """Build the partition's HNSW index, with memory for its graph: a graph that outgrows
        ``maintenance_work_mem`` is finished on disk, many times slower."""
        need_mb = rows * (4 * self.dim + HNSW_ROW_OVERHEAD) * 5 // 4 // (1 << 20) + 1
        mb = min(BUILD_MEMORY_MAX_MB, max(64, need_mb))
        await conn.execute(f"SET LOCAL maintenance_work_mem = '{mb}MB'")
        await conn.execute(
            f"CREATE INDEX {self._index} ON {self._partition}"
            " USING hnsw (embedding vector_cosine_ops)"
        )

    def delete(self, keys: Collection[str]) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(
                f"DELETE FROM {self.table} WHERE collection = $1 AND key = ANY($2::text[])",
                self._cid,
                list(keys),
            )

        if keys:
            self._sync()
            self._run(self._tx(work))

    def _sync(self) -> None:
        """Reads see this store's own upserts: write them first."""
        with self._lock:
            if self._pending:
                self._write_pending()

    def keys(self) -> set[str]:
        async def work(conn: Any) -> list[Any]:
            sql = f"SELECT key FROM {self.table} WHERE collection = $1"
            return list(await conn.fetch(sql, self._cid))

        self._sync()
        return {row["key"] for row in self._run(self._tx(work))}

    def __len__(self) -> int:
        async def work(conn: Any) -> int:
            sql = f"SELECT count(*) FROM {self.table} WHERE collection = $1"
            return int(await conn.fetchval(sql, self._cid))

        self._sync()
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
            # Without its index (inside a bulk load) the same query is an exact scan.
            sql = (
                "WITH hits AS MATERIALIZED ("
                f"SELECT key, {order} AS distance FROM {self._partition}"
                f" WHERE $1::text IS NOT NULL ORDER BY {order} LIMIT $3)"
                " SELECT key, 1 - distance AS score FROM hits ORDER BY distance, key"
            )
            args = (self._cid, vector, k)
        ef = self.ef_search or default_ef_search(k)

        async def work(conn: Any) -> list[Any]:
            if restrict is None and k > MAX_EF_SEARCH:
                await conn.execute("SET LOCAL enable_indexscan = off")
            elif restrict is None:
                await conn.execute(f"SET LOCAL hnsw.ef_search = {min(MAX_EF_SEARCH, ef)}")
            return list(await conn.fetch(sql, *args))

        self._sync()
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


def open_store(where: StoreLocation) -> VectorStore:
    """The ``pgvector`` entry point: the collection in the database at ``where.url``."""
    if not where.url:
        raise InvalidInput("the pgvector store needs a postgresql:// URL", field="vector_url")
    return PgVectorStore(where.url, where.dim, where.tenant, where.collection)
