"""Indexing and query speed of the knowledge engine, on the Python standard library.

    .venv/bin/python bench/knowledge_index.py [--source DIR] [--queries 200]

1. Index throughput (files/s, chunks/s, peak RSS) of a copy of the interpreter's stdlib,
   lexical part (chunking + BM25); MiniLM embedding throughput measured on a sample.
2. Re-index after a one-line change to one file.
3. Query latency P50/P95: BM25, dense (exact numpy, 384-d) and hybrid over the index, with
   the dense side padded to ~100k vectors (random unit vectors, to time the machinery).
4. Repo-map build time (definitions, reference graph, personalised PageRank).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from musubi.knowledge.embeddings import Embedder
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.repomap import build_repo_map
from musubi.knowledge.retrieval import Retriever
from musubi.knowledge.store import KnowledgeIndex
from musubi.knowledge.vectorstores import NumpyVectorStore

QUERIES = [
    "parse a url into its components",
    "read a gzip file",
    "thread pool executor shutdown",
    "json decode error position",
    "http request headers",
    "sort dictionary by value",
    "temporary directory cleanup",
    "compile regular expression flags",
    "socket timeout",
    "decimal rounding mode",
    "csv writer quoting",
    "datetime timezone offset",
]


class RandomEmbedder(Embedder):
    name, dim = "random-384", 384

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--embed-sample", type=int, default=256)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="musubi-bench-"))
    repo = work / "stdlib"
    shutil.copytree(args.source, repo, ignore=shutil.ignore_patterns("site-packages"))
    index = KnowledgeIndex.open(work / "idx" / "index.sqlite")
    rows: list[tuple[str, str]] = []

    before = rss_mb()
    report = index_repository(repo, index)
    rows += [
        ("files indexed", f"{report.indexed} ({dict(report.skipped)} skipped)"),
        ("chunks", f"{report.chunks}"),
        ("index time", f"{report.seconds:.1f} s"),
        ("files/s", f"{report.indexed / report.seconds:.0f}"),
        ("chunks/s", f"{report.chunks / report.seconds:.0f}"),
        ("peak RSS", f"{rss_mb():.0f} MB (started at {before:.0f} MB)"),
    ]

    try:
        from musubi.knowledge.embeddings.minilm import MiniLMEmbedder

        minilm = MiniLMEmbedder()
        sample = [c.text for c in index.chunks()[: args.embed_sample]]
        t0 = time.perf_counter()
        minilm.embed_documents(sample)
        rate = len(sample) / (time.perf_counter() - t0)
        rows.append(("MiniLM embedding", f"{rate:.1f} chunks/s (numpy, this CPU)"))
    except ImportError:
        rows.append(("MiniLM embedding", "skipped (knowledge extra missing)"))

    target = repo / "json" / "decoder.py"
    target.write_text(target.read_text() + "\n# one more line\n")
    again = index_repository(repo, index)
    rows.append(("re-index, one file changed", f"{again.seconds:.2f} s ({again.indexed} file)"))

    emb = RandomEmbedder()
    store = NumpyVectorStore(work / "vectors", emb.dim)
    keys = sorted(index.distinct_keys())
    store.upsert(keys, emb.embed_documents(keys))
    pad = max(0, 100_000 - len(keys))
    store.upsert([f"pad{i}" for i in range(pad)], emb.embed_documents(["x"] * pad))
    retriever = Retriever(index, emb, store)
    lex, dense, hybrid = [], [], []
    for i in range(args.queries):
        q = QUERIES[i % len(QUERIES)]
        t0 = time.perf_counter()
        index.lexical(q, 100)
        lex.append(time.perf_counter() - t0)
        vec = emb.embed_query(q)
        t0 = time.perf_counter()
        store.search(vec, 100)
        dense.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        retriever.search(q, 10)
        hybrid.append(time.perf_counter() - t0)
    for name, xs in (("BM25", lex), (f"dense ({len(store)} x 384)", dense), ("hybrid", hybrid)):
        rows.append((f"query {name}", f"P50 {pct(xs, 0.5):.1f} ms, P95 {pct(xs, 0.95):.1f} ms"))

    t0 = time.perf_counter()
    repo_map = build_repo_map(index, "parse json documents")
    rows.append(
        ("repo-map build", f"{time.perf_counter() - t0:.1f} s ({len(repo_map.definitions)} defs)")
    )
    rows.append(("median hybrid (s)", f"{statistics.median(hybrid):.4f}"))

    print(f"\nknowledge engine on {args.source} (copied to {repo})")
    for name, value in rows:
        print(f"{name:32} {value}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
