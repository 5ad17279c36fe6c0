"""The pgvector store beyond the contract: tenant isolation (store and raw SQL under RLS),
HNSW search at a size where the index is used, the indexer on top, a missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.errors import MissingExtra
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.workspace import Workspace

np = pytest.importorskip("numpy", reason="the knowledge extra is not installed")
pytest.importorskip("asyncpg", reason="the postgres extra is not installed")

from musubi.knowledge.vectorstores.pgvector import PgVectorStore  # noqa: E402

DIM = 8


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
    conn = await asyncpg.connect(pgvector_url)
    try:
        await conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kv_app') THEN "
            "CREATE ROLE kv_app NOSUPERUSER NOBYPASSRLS; END IF; END $$"
        )
        await conn.execute("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO kv_app")
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE kv_app")
            await conn.execute("SELECT set_config('musubi.tenant_id', 'rls-b', true)")
            rows = await conn.fetch(
                f"SELECT tenant_id, key FROM knowledge_vectors_d{DIM} WHERE tenant_id LIKE 'rls-%'"
            )
            assert [(r["tenant_id"], r["key"]) for r in rows] == [("rls-b", "mine")]
            # A's partition read directly (no parent policy on the way) is still empty for B.
            assert await conn.fetchval(f"SELECT count(*) FROM {a._partition}") == 0
        async with conn.transaction():  # no tenant bound: nothing at all
            await conn.execute("SET LOCAL ROLE kv_app")
            assert await conn.fetchval(f"SELECT count(*) FROM knowledge_vectors_d{DIM}") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # B cannot write as A
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE kv_app")
                await conn.execute("SELECT set_config('musubi.tenant_id', 'rls-b', true)")
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
    with pytest.raises(MissingExtra, match=r"musubi\[postgres\]"):
        PgVectorStore("postgresql://nowhere/db", DIM, "t", "c")
