"""Load time, query latency and HNSW recall of the pgvector store next to the numpy store.

    .venv/bin/python bench/knowledge_pgvector.py [--n 100000] [--dim 384] [--queries 200]
        [--data clustered|random] [--pattern bulk|indexer|rows] [--ef 100,200]

Loads ``n`` unit vectors into both stores (pgvector: PostgreSQL 16 + pgvector 0.6 from the
``pgserver`` wheel, in a temporary data directory) and times ``search(q, 100)`` (the
retriever's candidate count) over queries from the same distribution: P50/P95, and
recall@100 of the HNSW results against exact search at each ``--ef`` and the store's default
beam. ``--pattern`` is how the rows arrive:

- ``bulk``: the first index of a project, in :meth:`PgVectorStore.bulk_load` (binary COPY
  through a staging table, the HNSW index built once after the load);
- ``indexer``: batches of 32 and a flush every 2,048 rows, without ``bulk_load`` (each
  flush a bulk write; the index is rebuilt while the partition is small, then maintained);
- ``rows``: every row inserted into the maintained index (the store before bulk loading).

After the load, an incremental add (100 new rows and a flush: a re-index after a small
change) is timed too.

``--data random`` draws uniformly from the sphere: every point is about as far from every
other, the worst case for HNSW. ``--data clustered`` is a Gaussian mixture (50 centres, a
shared offset, anisotropic noise) calibrated to MiniLM embeddings of a real repository's
chunks: mean pairwise cosine .19, mean nearest-neighbour cosine .72 at 2,800 points, half of
the variance in ~30 principal components (the real vectors: .19, .74, 24).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from musubi.knowledge.vectorstores import NumpyVectorStore
from musubi.knowledge.vectorstores.pgvector import PgVectorStore, close_pools, default_ef_search

K = 100


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[round(q * 100) - 1] * 1000


def timed(search: Callable[[Any], list[tuple[str, float]]], queries: Any) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        search(q)
        out.append(time.perf_counter() - t0)
    return out


def unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def random_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, dim)))


def clustered_vectors(n: int, dim: int, seed: int, centres: int = 50) -> np.ndarray:
    """Embedding-like data: ``0.65 g + c_j + 0.05 (z * s) Qᵀ``, normalised, where ``g`` is
    one shared direction (embeddings are anisotropic), ``c_j`` one of ``centres`` random unit
    centres, and the noise has a power-law spectrum (``s_i ∝ i^-0.45``) in a random basis
    ``Q``. The mixture (centres, ``g``, ``Q``) is fixed; ``seed`` draws the points."""
    mix = np.random.default_rng(12345)
    g = unit(mix.standard_normal((1, dim)))[0]
    c = unit(mix.standard_normal((centres, dim)))
    q, _ = np.linalg.qr(mix.standard_normal((dim, dim)))
    scale = np.arange(1, dim + 1) ** -0.45
    scale *= np.sqrt(dim / (scale**2).sum())
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):  # bounded memory at 100k x 384
        m = min(8192, n - start)
        noise = (rng.standard_normal((m, dim)) * scale) @ q.T
        out[start : start + m] = unit(0.65 * g + c[rng.integers(0, centres, m)] + 0.05 * noise)
    return out


def minilm_vectors(n: int, cache: Path) -> np.ndarray:
    """MiniLM embeddings of ``n`` chunks drawn from this interpreter's standard library
    (~15-25 chunks/s on 2 cores: cached in ``cache``)."""
    path = cache / f"minilm-stdlib-{n}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    from musubi.knowledge.chunking import ChunkOptions, chunk_file
    from musubi.knowledge.embeddings.minilm import MiniLMEmbedder
    from musubi.knowledge.languages import detect_language

    root = Path(sysconfig.get_paths()["stdlib"])
    texts: dict[str, None] = {}
    for file in sorted(root.rglob("*.py")):
        rel = str(file.relative_to(root))
        if "site-packages" in rel:
            continue
        try:
            chunks = chunk_file(rel, detect_language(rel), file.read_text(), ChunkOptions())
        except (UnicodeDecodeError, ValueError, RuntimeError, RecursionError):
            continue
        texts.update((c.text, None) for c in chunks)
    pool = list(texts)
    if len(pool) < n:
        raise SystemExit(f"the standard library has {len(pool)} distinct chunks, not {n}")
    picked = [pool[i] for i in np.random.default_rng(0).choice(len(pool), n, replace=False)]
    embed: Callable[[list[str]], np.ndarray] = MiniLMEmbedder().embed_documents
    try:  # the same vectors (tests/knowledge/test_contracts.py), ~3x faster on this CPU
        from sentence_transformers import SentenceTransformer

        from musubi.knowledge.embeddings.minilm import model_dir

        model = SentenceTransformer(str(model_dir()), device="cpu")
        embed = partial(model.encode, normalize_embeddings=True, batch_size=32)
    except ImportError:
        pass
    parts: list[np.ndarray] = []
    t0 = time.perf_counter()
    for start in range(0, n, 512):
        parts.append(embed(picked[start : start + 512]))
        done = start + len(parts[-1])
        rate = done / (time.perf_counter() - t0)
        print(f"embedded {done}/{n} chunks ({rate:.1f}/s)", file=sys.stderr)
    out = np.concatenate(parts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def load_pg(store: PgVectorStore, keys: list[str], vecs: np.ndarray, pattern: str) -> None:
    if pattern == "bulk":
        with store.bulk_load():
            for start in range(0, len(keys), 4096):
                store.upsert(keys[start : start + 4096], vecs[start : start + 4096])
    elif pattern == "indexer":  # the indexer's batches and flushes, no bulk_load
        for start in range(0, len(keys), 32):
            store.upsert(keys[start : start + 32], vecs[start : start + 32])
            if (start + 32) % 2048 == 0:
                store.flush()
        store.flush()
    else:  # row by row into the maintained index
        store.upsert(keys[:1], vecs[:1])
        store.flush()
        for start in range(1, len(keys), 500):
            store.upsert(keys[start : start + 500], vecs[start : start + 500])
            store.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=["clustered", "random", "minilm"], default="clustered")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/musubi-pgv-cache"))
    ap.add_argument("--pattern", choices=["bulk", "indexer", "rows"], default="bulk")
    ap.add_argument(
        "--ef", default="100,200", help="ef_search values for recall, besides the default"
    )
    args = ap.parse_args()
    if args.data == "minilm":  # held-out chunks are the queries and the incremental add
        allv = minilm_vectors(args.n + 100 + args.queries, args.cache)
        args.dim = allv.shape[1]
        vecs, extra, queries = np.split(allv, [args.n, args.n + 100])
    else:
        make = clustered_vectors if args.data == "clustered" else random_vectors
        vecs = make(args.n + 100, args.dim, 0)
        vecs, extra = vecs[: args.n], vecs[args.n :]
        queries = make(args.queries, args.dim, 1)
    keys = [f"k{i}" for i in range(args.n)]
    extra_keys = [f"x{i}" for i in range(len(extra))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="musubi-pgv-"))
        server = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        rows = []
        numpy_store = NumpyVectorStore(tmp / "np", args.dim)
        t0 = time.perf_counter()
        for start in range(0, args.n, 4096):
            numpy_store.upsert(keys[start : start + 4096], vecs[start : start + 4096])
        numpy_store.flush()
        np_load = time.perf_counter() - t0
        pg = PgVectorStore(server.get_uri(), args.dim, "bench", "p/e")
        t0 = time.perf_counter()
        load_pg(pg, keys, vecs, args.pattern)
        pg_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        pg.upsert(extra_keys, extra)
        pg.flush()
        pg_add = time.perf_counter() - t0
        numpy_store.upsert(extra_keys, extra)
        numpy_store.flush()
        for name, store, load, add in (
            ("numpy (exact, embedded)", numpy_store, np_load, None),
            (f"pgvector (HNSW, {args.pattern} load)", pg, pg_load, pg_add),
        ):
            store.search(queries[0], K)  # warm
            xs = timed(partial(store.search, k=K), queries)
            rows.append((name, load, add, pct(xs, 0.5), pct(xs, 0.95)))
        probes = queries[:50]
        truth = [{k for k, _ in numpy_store.search(q, K)} for q in probes]
        recall = {}
        for ef in [int(e) for e in args.ef.split(",") if e] + [0]:
            probe = PgVectorStore(server.get_uri(), args.dim, "bench", "p/e", ef_search=ef or None)
            xs = timed(partial(probe.search, k=K), probes)
            hits = [{k for k, _ in probe.search(q, K)} for q in probes]
            found = sum(len(t & h) for t, h in zip(truth, hits, strict=True))
            recall[ef] = (found / (len(probes) * K), pct(xs, 0.5))
        print(
            f"{args.n:,} x {args.dim} {args.data} unit vectors, search k={K},"
            f" {args.queries} queries, {args.pattern} load"
        )
        print(f"{'store':36} {'load s':>8} {'+100 s':>8} {'P50 ms':>8} {'P95 ms':>8}")
        for name, load, add, p50, p95 in rows:
            added = "" if add is None else f"{add:8.2f}"
            print(f"{name:36} {load:8.1f} {added:>8} {p50:8.1f} {p95:8.1f}")
        for ef, (r, p50) in recall.items():
            label = f"ef_search={ef}" if ef else f"default ef_search={default_ef_search(K)}"
            print(f"recall@{K} vs exact, {label}: {r:.3f} (P50 {p50:.1f} ms)")
    finally:
        close_pools()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
