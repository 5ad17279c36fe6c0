"""Query latency of the pgvector store next to the embedded numpy store.

    .venv/bin/python bench/knowledge_pgvector.py [--n 100000] [--dim 384] [--queries 200]

Loads ``n`` random unit vectors into both stores (pgvector: PostgreSQL 16 + pgvector 0.6
from the ``pgserver`` wheel, in a temporary data directory, HNSW index maintained during
the load), then times ``search(q, 100)`` (the retriever's candidate count) over random
queries: P50/P95, and recall@100 of the HNSW results against exact search. Random vectors
are the hard case for HNSW recall; real embeddings cluster.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from musubi.knowledge.vectorstores import NumpyVectorStore, VectorStore
from musubi.knowledge.vectorstores.pgvector import PgVectorStore, close_pools


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[round(q * 100) - 1] * 1000


def timed(search: Callable[[Any], list[tuple[str, float]]], queries: Any) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        search(q)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    keys = [f"k{i}" for i in range(args.n)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="musubi-pgv-"))
        server = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        stores: dict[str, VectorStore] = {
            "numpy (exact, embedded)": NumpyVectorStore(tmp / "np", args.dim),
            "pgvector (HNSW, m=16, ef_construction=64)": PgVectorStore(
                server.get_uri(), args.dim, "bench", "p/e"
            ),
        }
        rows = []
        for name, store in stores.items():
            t0 = time.perf_counter()
            for start in range(0, args.n, 4096):
                store.upsert(keys[start : start + 4096], vecs[start : start + 4096])
            store.flush()
            load = time.perf_counter() - t0
            store.search(queries[0], 100)  # warm
            xs = timed(lambda q, s=store: s.search(q, 100), queries)
            rows.append((name, load, pct(xs, 0.5), pct(xs, 0.95)))
        ref = stores["numpy (exact, embedded)"]
        pg = stores["pgvector (HNSW, m=16, ef_construction=64)"]
        found = sum(
            len({k for k, _ in ref.search(q, 100)} & {k for k, _ in pg.search(q, 100)})
            for q in queries[:50]
        )
        print(f"{args.n:,} x {args.dim} random unit vectors, search k=100, {args.queries} queries")
        print(f"{'store':45} {'load s':>8} {'P50 ms':>8} {'P95 ms':>8}")
        for name, load, p50, p95 in rows:
            print(f"{name:45} {load:8.1f} {p50:8.1f} {p95:8.1f}")
        print(f"pgvector HNSW recall@100 vs exact (ef_search=100): {found / 5000:.3f}")
    finally:
        close_pools()
        server.cleanup()


if __name__ == "__main__":
    main()
