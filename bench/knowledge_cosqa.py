"""Retrieval quality on CoSQA: BM25, MiniLM, and the hybrid fusion, one command.

    .venv/bin/python bench/knowledge_cosqa.py [--dataset DIR] [--cache DIR]

Corpus: the 6,267 snippets of ``code_idx_map.txt``. The fusion weight is tuned on
``cosqa-retrieval-dev-500.json`` only and reported on ``cosqa-retrieval-test-500.json``
(NDCG@10, MRR@10, Recall@1, Recall@10). Embeddings are cached by content hash in
``--cache`` (embedding the corpus on 2 CPU cores takes ~10 minutes the first time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from musubi.knowledge.chunking import Chunk
from musubi.knowledge.embeddings.minilm import MiniLMEmbedder
from musubi.knowledge.retrieval import DENSE_WEIGHT, Retriever, fuse
from musubi.knowledge.store import KnowledgeIndex
from musubi.knowledge.vectorstores import MemoryVectorStore

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cosqa"


def embed_cached(texts: list[str], cache: Path, embedder: MiniLMEmbedder) -> np.ndarray:
    keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]  # noqa: S324 - cache keys
    cache.mkdir(parents=True, exist_ok=True)
    done: dict[str, np.ndarray] = {}
    for part in sorted(cache.glob("part-*.npz")):
        data = np.load(part)
        done.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    todo = [i for i, k in enumerate(keys) if k not in done]
    step = 512
    for start in range(0, len(todo), step):
        rows = todo[start : start + step]
        t0 = time.perf_counter()
        vecs = embedder.embed_documents([texts[i] for i in rows])
        np.savez(
            cache / f"part-{time.time_ns()}.npz",
            keys=np.array([keys[i] for i in rows]),
            vectors=vecs,
        )
        done.update(zip([keys[i] for i in rows], vecs, strict=True))
        print(
            f"  embedded {start + len(rows)}/{len(todo)} ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
        )
    return np.stack([done[k] for k in keys])


def metrics(ranked: list[list[int]], gold: list[int]) -> dict[str, float]:
    ndcg = mrr = r1 = r10 = 0.0
    for ranks, g in zip(ranked, gold, strict=True):
        top = ranks[:10]
        if g in top:
            pos = top.index(g)
            ndcg += 1 / math.log2(pos + 2)
            mrr += 1 / (pos + 1)
            r10 += 1
            r1 += pos == 0
    n = len(gold)
    return {"NDCG@10": ndcg / n, "MRR@10": mrr / n, "R@1": r1 / n, "R@10": r10 / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", type=Path, default=DEFAULT)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/musubi-cosqa-cache"))
    args = ap.parse_args()
    corpus: dict[str, int] = json.loads((args.dataset / "code_idx_map.txt").read_text())
    snippets = sorted(corpus, key=corpus.__getitem__)
    splits = {
        s: json.loads((args.dataset / f"cosqa-retrieval-{s}-500.json").read_text())
        for s in ("dev", "test")
    }
    embedder = MiniLMEmbedder()
    print(f"embedding {len(snippets)} snippets + queries (cached in {args.cache})", file=sys.stderr)
    doc_vecs = embed_cached(snippets, args.cache, embedder)
    index = KnowledgeIndex.memory()
    index.add_chunks(
        [
            Chunk(f"snippet/{i}.py", "python", "function", "", 1, 1, s)
            for i, s in enumerate(snippets)
        ]
    )
    store = MemoryVectorStore(embedder.dim)
    store.upsert(index.keys_in_order(), doc_vecs)
    retriever = Retriever(index, embedder, store)

    def run(split: str) -> dict[str, Any]:
        queries = [q["doc"] for q in splits[split]]
        gold = [int(q["retrieval_idx"]) for q in splits[split]]
        q_vecs = embed_cached(queries, args.cache, embedder)
        lists = [retriever.candidates(q, v, 100) for q, v in zip(queries, q_vecs, strict=True)]
        return {"gold": gold, "lists": lists}

    def score(data: dict[str, Any], weight: float) -> dict[str, float]:
        ranked = [
            [int(Path(h).stem) for h, _ in fuse(lex, dense, weight)] for lex, dense in data["lists"]
        ]
        return metrics(ranked, data["gold"])

    dev, test = run("dev"), run("test")
    grid = [round(0.05 * i, 2) for i in range(21)]
    best = max(grid, key=lambda w: score(dev, w)["NDCG@10"])
    rows = [
        ("BM25 (identifier split)", 0.0),
        ("MiniLM (dense)", 1.0),
        (f"hybrid, dev-tuned w={best}", best),
        (f"hybrid, default w={DENSE_WEIGHT}", DENSE_WEIGHT),
    ]
    print(f"\nCoSQA test-500 over {len(snippets)} snippets (fusion weight tuned on dev-500)")
    print(f"{'method':28} {'NDCG@10':>8} {'MRR@10':>8} {'R@1':>6} {'R@10':>6}")
    for name, w in rows:
        m = score(test, w)
        print(f"{name:28} {m['NDCG@10']:8.3f} {m['MRR@10']:8.3f} {m['R@1']:6.3f} {m['R@10']:6.3f}")


if __name__ == "__main__":
    main()
