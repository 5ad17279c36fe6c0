"""The pgvector store beyond the contract: tenant isolation (store and raw SQL under RLS),
HNSW search at a size where the index is used, bulk loading (COPY staging, the index built
after the load, small adds kept incremental, a non-superuser role under forced RLS), the
indexer on top, a missing extra."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.errors import MissingExtra
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.workspace import Workspace

np = pytest.importorskip("numpy", reason="the knowledge extra is not installed")
pytest.importorskip("asyncpg", reason="the postgres extra is not installed")

from musubi.knowledge.vectorstores.pgvector import BULK_MIN, PgVectorStore  # noqa: E402

DIM = 8


async def _grant_app_role(conn: Any) -> None:
    """``kv_app``: a role RLS applies to (neither superuser nor BYPASSRLS), as the app's."""
    await conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kv_app') THEN "
        "CREATE ROLE kv_app NOSUPERUSER NOBYPASSRLS; END IF; END $$"
    )
    await conn.execute("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO kv_app")


@asynccontextmanager
async def _as_app_role(conn: Any, tenant: str | None) -> AsyncIterator[None]:
    """A transaction as ``kv_app``, with ``tenant`` bound as the store binds it (or none)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE kv_app")
        if tenant is not None:
            await conn.execute("SELECT set_config('musubi.tenant_id', $1, true)", tenant)
        yield


def _vecs(seed: int, n: int, dim: int = DIM) -> object:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_tenant_b_never_sees_tenant_a(pgvector_url: str, tmp_path: Path) -> None:
    a = PgVectorStore(pgvector_url, DIM, "tenant-a", f"{tmp_path.name}/p1/e")
    b = PgVectorStore(pgvector_url, DIM, "tenant-b", f"{tmp_path.name}/p1/e")  # same project id
    va = _vecs(1, 50)
    a.upsert([f"k{i}" for i in range(50)], va)  # type: ignore[arg-type]
    b.upsert(["k0", "only-b"], _vecs(2, 2))  # type: ignore[arg-type]
    assert b.keys() == {"k0", "only-b"} and len(b) == 2 and len(a) == 50
    for i in range(5):
        hits = b.search(va[i], 10)  # type: ignore[index]
        assert {k for k, _ in hits} <= {"k0", "only-b"}
        assert {k for k, _ in b.search(va[i], 10, restrict={"k3", "k4"})} == set()  # type: ignore[index]
    b.delete([f"k{i}" for i in range(1, 50)])  # deleting "A's keys" from B touches nothing of A
    assert len(a) == 50
    assert a.search(va[7], 1)[0][0] == "k7"  # type: ignore[index]


async def test_raw_sql_under_rls_sees_only_the_bound_tenant(
    pgvector_url: str, tmp_path: Path
) -> None:
    import asyncpg

    a = PgVectorStore(pgvector_url, DIM, "rls-a", f"{tmp_path.name}/p")
    b = PgVectorStore(pgvector_url, DIM, "rls-b", f"{tmp_path.name}/p")
    a.upsert(["secret"], _vecs(3, 1))  # type: ignore[arg-type]
    b.upsert(["mine"], _vecs(4, 1))  # type: ignore[arg-type]
    a.flush()  # upserts are buffered until a flush (or a read through the store)
    b.flush()
    conn = await asyncpg.connect(pgvector_url)
    try:
        await _grant_app_role(conn)
        async with _as_app_role(conn, "rls-b"):
            rows = await conn.fetch(
                f"SELECT tenant_id, key FROM knowledge_vectors_d{DIM} WHERE tenant_id LIKE 'rls-%'"
            )
            assert [(r["tenant_id"], r["key"]) for r in rows] == [("rls-b", "mine")]
            # A's partition read directly (no parent policy on the way) is still empty for B.
            assert await conn.fetchval(f"SELECT count(*) FROM {a._partition}") == 0
        async with _as_app_role(conn, None):  # no tenant bound: nothing at all
            assert await conn.fetchval(f"SELECT count(*) FROM knowledge_vectors_d{DIM}") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # B cannot write as A
            async with _as_app_role(conn, "rls-b"):
                await conn.execute(
                    f"INSERT INTO knowledge_vectors_d{DIM} (tenant_id, collection, key, embedding)"
                    f" SELECT 'rls-a', collection, 'planted', embedding FROM {b._partition}"
                )
    finally:
        await conn.close()


def test_hnsw_search_returns_k_and_agrees_with_exact(pgvector_url: str, tmp_path: Path) -> None:
    s = PgVectorStore(pgvector_url, DIM, "t", f"{tmp_path.name}/big")
    n = 1500
    vecs = _vecs(5, n)
    keys = [f"c{i}" for i in range(n)]
    s.upsert(keys, vecs)  # type: ignore[arg-type]
    hits_total = 0
    for q in _vecs(6, 10):  # type: ignore[attr-defined]
        hits = s.search(q, 100)
        assert len(hits) == 100  # ef_search raised to k (HNSW would stop at 40)
        scores = [sc for _, sc in hits]
        assert scores == sorted(scores, reverse=True)
        exact = {keys[i] for i in np.argsort(-(vecs @ q))[:100]}  # type: ignore[operator]
        hits_total += len(exact & {k for k, _ in hits})
    assert hits_total / 1000 >= 0.9


async def _catalog(url: str, sql: str, *args: object) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _index_oid(url: str, store: PgVectorStore) -> int | None:
    """The OID of the collection's HNSW index (a rebuilt index has a new one), or None."""
    oid = await _catalog(
        url,
        "SELECT c.oid FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
        " WHERE c.relname = $1 AND a.amname = 'hnsw'",
        store._index,
    )
    return oid if isinstance(oid, int) else None


def _recall(store: PgVectorStore, vecs: object, keys: list[str], k: int = 50) -> float:
    found = 0
    for q in _vecs(99, 10):  # type: ignore[attr-defined]
        exact = {keys[i] for i in np.argsort(-(vecs @ q))[:k]}  # type: ignore[operator]
        found += len(exact & {key for key, _ in store.search(q, k)})
    return found / (10 * k)


async def test_bulk_add_is_indexed_searchable_and_isolated(
    pgvector_url: str, tmp_path: Path
) -> None:
    import asyncpg

    a = PgVectorStore(pgvector_url, DIM, "bulk-a", f"{tmp_path.name}/p")
    b = PgVectorStore(pgvector_url, DIM, "bulk-b", f"{tmp_path.name}/p")
    n = BULK_MIN + 500
    va, vb = _vecs(7, n), _vecs(8, n)
    keys = [f"k{i}" for i in range(n)]
    for store, vecs in ((a, va), (b, vb)):  # two batches, one write: the bulk path
        store.upsert(keys[:700], vecs[:700])  # type: ignore[index]
        store.upsert(keys[700:], vecs[700:])  # type: ignore[index]
        assert await _index_oid(pgvector_url, store) is None  # buffered, nothing written yet
        store.flush()
        assert await _index_oid(pgvector_url, store) is not None  # built after the load
    conn = await asyncpg.connect(pgvector_url)
    try:
        plan = await conn.fetch(
            f"EXPLAIN SELECT key FROM {a._partition} ORDER BY embedding <=> $1 LIMIT 10",
            "[" + ",".join(["0.5"] * DIM) + "]",
        )
    finally:
        await conn.close()
    assert f"Index Scan using {a._index}" in " ".join(r[0] for r in plan)
    assert len(a) == n and _recall(a, va, keys) >= 0.9
    for i in range(0, n, 300):  # B's search finds B's vectors, never A's
        assert b.search(va[i], 5)[0][1] < 0.9999 and b.search(vb[i], 1)[0][0] == keys[i]  # type: ignore[index]
    conn = await asyncpg.connect(pgvector_url)
    try:
        await _grant_app_role(conn)
        async with _as_app_role(conn, "bulk-b"):
            assert await conn.fetchval(f"SELECT count(*) FROM {a._partition}") == 0
            assert await conn.fetchval(f"SELECT count(*) FROM {b._partition}") == n
            assert (
                await conn.fetchval(
                    f"SELECT count(*) FROM knowledge_vectors_d{DIM} WHERE tenant_id = 'bulk-a'"
                )
                == 0
            )
    finally:
        await conn.close()


async def test_small_adds_keep_the_index_and_close_bulk_adds_rebuild_it(
    pgvector_url: str, tmp_path: Path
) -> None:
    s = PgVectorStore(pgvector_url, DIM, "t", f"{tmp_path.name}/grow")
    n = 5 * BULK_MIN
    vecs = _vecs(9, n + 10 + 3 * BULK_MIN)
    keys = [f"g{i}" for i in range(len(vecs))]  # type: ignore[arg-type]
    cuts = [0, n, n + 10, n + 10 + BULK_MIN, len(keys)]
    s.upsert(keys[:n], vecs[:n])  # type: ignore[index]
    s.flush()
    built = await _index_oid(pgvector_url, s)
    assert built is not None
    s.upsert(keys[n : cuts[2]], vecs[n : cuts[2]])  # type: ignore[index]
    s.flush()  # a one-file re-index: into the maintained index
    assert await _index_oid(pgvector_url, s) == built
    s.upsert(keys[cuts[2] : cuts[3]], vecs[cuts[2] : cuts[3]])  # type: ignore[index]
    s.flush()  # staged with COPY, but 1,000 rows into 5,010: still the maintained index
    assert await _index_oid(pgvector_url, s) == built
    s.upsert(keys[cuts[3] :], vecs[cuts[3] :])  # type: ignore[index]
    s.flush()  # 2,000 rows into 6,010: loaded first, index rebuilt after
    rebuilt = await _index_oid(pgvector_url, s)
    assert rebuilt is not None and rebuilt != built
    assert len(s) == len(keys) and _recall(s, vecs, keys) >= 0.9
    s.upsert(keys[:3], vecs[3:6])  # type: ignore[index]  # replaced, not duplicated
    assert len(s) == len(keys) and s.search(vecs[3], 1)[0][0] in {"g0", "g3"}  # type: ignore[index]


async def test_bulk_load_builds_the_index_once_at_the_end(
    pgvector_url: str, tmp_path: Path
) -> None:
    s = PgVectorStore(pgvector_url, DIM, "t", f"{tmp_path.name}/first")
    vecs = _vecs(10, 3000)
    keys = [f"f{i}" for i in range(3000)]
    s.upsert(keys[:100], vecs[:100])  # type: ignore[index]
    s.flush()
    assert await _index_oid(pgvector_url, s) is not None
    with s.bulk_load():
        for start in range(0, 3000, 64):  # the indexer's pattern: small batches, periodic flushes
            s.upsert(keys[start : start + 64], vecs[start : start + 64])  # type: ignore[index]
            if start % 1024 == 0:
                s.flush()
                assert await _index_oid(pgvector_url, s) is None  # set aside while loading
        assert s.search(vecs[2999], 1)[0][0] == "f2999"  # type: ignore[index]  # exact meanwhile
    built = await _index_oid(pgvector_url, s)
    assert built is not None
    assert len(s) == 3000 and _recall(s, vecs, keys) >= 0.9
    more = _vecs(13, BULK_MIN)
    with s.bulk_load(expected=10):  # a small re-index: the index stays in place
        s.upsert(["m0"], more[:1])  # type: ignore[index]
        s.flush()
        assert await _index_oid(pgvector_url, s) == built
    with s.bulk_load(expected=BULK_MIN):  # 1,000 into 3,000: set aside, rebuilt at the end
        s.upsert([f"m{i}" for i in range(BULK_MIN)], more)  # type: ignore[arg-type]
        s.flush()
        assert await _index_oid(pgvector_url, s) is None
    assert await _index_oid(pgvector_url, s) not in {None, built}
    assert len(s) == 3000 + BULK_MIN


async def test_bulk_path_works_for_a_role_under_forced_rls(
    pgvector_url: str, tmp_path: Path
) -> None:
    """COPY into a table under RLS is refused for such a role: the rows are staged in a
    temporary table and moved by an INSERT that the policy checks."""
    import asyncpg

    conn = await asyncpg.connect(pgvector_url)
    try:
        await conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kv_loader') THEN "
            "CREATE ROLE kv_loader LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$"
        )
        await conn.execute("GRANT CREATE ON SCHEMA public TO kv_loader")
    finally:
        await conn.close()
    parts = urlsplit(pgvector_url)
    url = urlunsplit(parts._replace(netloc="kv_loader@" + parts.netloc.rpartition("@")[2]))
    dim = 6  # a table of its own, owned by kv_loader (an owner is bound by FORCE RLS)
    a = PgVectorStore(url, dim, "role-a", f"{tmp_path.name}/p")
    b = PgVectorStore(url, dim, "role-b", f"{tmp_path.name}/p")
    n = BULK_MIN + 1
    va = _vecs(11, n, dim)
    a.upsert([f"a{i}" for i in range(n)], va)  # type: ignore[arg-type]
    b.upsert([f"b{i}" for i in range(n)], _vecs(12, n, dim))  # type: ignore[arg-type]
    a.flush()
    b.flush()
    assert await _catalog(url, "SELECT current_user") == "kv_loader"
    assert (
        await _catalog(
            url, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        is False
    )
    assert len(a) == n and len(b) == n and await _index_oid(url, a) is not None
    assert {k for k, _ in b.search(va[0], 20)} <= {f"b{i}" for i in range(n)}  # type: ignore[index]
    assert await _catalog(url, f"SELECT count(*) FROM knowledge_vectors_d{dim}") == 0  # unbound


def test_indexer_through_pgvector_removes_deleted_files(
    pgvector_url: str, repo: Path, tmp_path: Path
) -> None:
    emb = HashingEmbedder()
    ws = Workspace.open(
        tmp_path / "ix", emb, vector_url=pgvector_url, scope=(f"t-{tmp_path.name}", "p")
    )
    assert isinstance(ws.store, PgVectorStore)
    try:
        index_repository(repo, ws.index, ws.embedder, ws.store)
        before = ws.store.keys()
        assert before and before == ws.index.distinct_keys()
        assert ws.retriever().search("check password", 3)[0].path == "src/auth.go"
        (repo / "src" / "auth.go").unlink()
        report = index_repository(repo, ws.index, ws.embedder, ws.store)
        assert report.vectors_deleted > 0
        assert ws.store.keys() == ws.index.distinct_keys() < before
    finally:
        ws.close()


def test_missing_asyncpg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(MissingExtra, match=r"musubi-platform\[postgres\]"):
        PgVectorStore("postgresql://nowhere/db", DIM, "t", "c")
