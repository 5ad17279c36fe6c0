"""Hybrid retrieval: BM25 and dense candidates fused by a weighted, normalised score.

Plain reciprocal-rank fusion throws the score gaps away and, on CoSQA, scored below the
dense model alone (.504 vs .593 NDCG@10). Here each list's scores are min-max normalised
over its candidates and combined as ``w * dense + (1 - w) * lexical``; a candidate missing
from one list gets that list's floor (0). ``w`` was tuned on CoSQA dev-500 only
(``bench/knowledge_cosqa.py``). With no embeddings (or none yet) search is lexical.

:func:`rank_files` aggregates chunk scores per file: the retrieval signal of issue-to-file
localisation, which :func:`musubi.knowledge.localise.localise` combines with what the issue
names (paths, stack-trace frames, module paths, defined identifiers).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from musubi.knowledge.store import Filters, KnowledgeIndex, StoredChunk

if TYPE_CHECKING:
    from musubi.knowledge.embeddings import Embedder
    from musubi.knowledge.vectorstores import VectorStore

__all__ = ["DENSE_WEIGHT", "Hit", "Retriever", "fuse", "rank_files"]

DENSE_WEIGHT = 0.7  # tuned on CoSQA dev-500; see docs/knowledge.md
CANDIDATES = 100
Reranker = Callable[[str, list["Hit"]], list["Hit"]]


@dataclass(frozen=True)
class Hit:
    path: str
    start: int
    end: int
    kind: str
    symbol: str
    language: str
    score: float
    text: str

    def as_dict(self, with_text: bool = True) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if with_text or k != "text"}
        out["score"] = round(self.score, 4)
        return out


def _normalise(scored: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not scored:
        return {}
    hi = max(s for _, s in scored)
    lo = min(s for _, s in scored)
    span = hi - lo
    return {k: (s - lo) / span if span > 0 else 1.0 for k, s in scored}


def fuse(
    lexical: Sequence[tuple[str, float]], dense: Sequence[tuple[str, float]], weight: float
) -> list[tuple[str, float]]:
    """Weighted fusion of two (id, score) lists; ``weight`` is the dense share."""
    lex, den = _normalise(lexical), _normalise(dense)
    ids = set(lex) | set(den)
    fused = {i: weight * den.get(i, 0.0) + (1 - weight) * lex.get(i, 0.0) for i in ids}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        weight: float = DENSE_WEIGHT,
        reranker: Reranker | None = None,
    ) -> None:
        self.index, self.embedder, self.store = index, embedder, store
        self.weight, self.reranker = weight, reranker

    @property
    def dense(self) -> bool:
        return self.embedder is not None and self.store is not None and len(self.store) > 0

    def candidates(
        self, query: str, vector: Any, n: int = CANDIDATES, filters: Filters | None = None
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """(lexical, dense) candidate lists keyed by ``path:start``-free chunk path ids."""
        lex = [(c.path, s) for c, s in self.index.lexical(query, n, filters)]
        if vector is None or self.store is None:
            return lex, []
        restrict = None
        if filters is not None and not filters.empty:
            restrict = {c.key for c in self.index.chunks(filters)}
        by_key = self.store.search(vector, n, restrict)
        chunks = self.index.by_keys([k for k, _ in by_key], filters)
        paths: dict[str, list[str]] = defaultdict(list)
        for c in chunks:
            paths[c.key].append(c.path)
        dense = [(p, s) for k, s in by_key for p in paths.get(k, [])]
        return lex, dense

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        n = max(CANDIDATES, k)
        lex_rows = self.index.lexical(query, n, filters)
        lexical = [(_cid(c), s) for c, s in lex_rows]
        chunks: dict[str, StoredChunk] = {_cid(c): c for c, _ in lex_rows}
        dense: list[tuple[str, float]] = []
        if self.dense:
            assert self.embedder is not None and self.store is not None
            vector = self.embedder.embed_query(query)
            restrict = None
            if filters is not None and not filters.empty:
                restrict = {c.key for c in self.index.chunks(filters)}
            by_key = self.store.search(vector, n, restrict)
            score_of = dict(by_key)
            for c in self.index.by_keys(score_of, filters):
                chunks[_cid(c)] = c
                dense.append((_cid(c), score_of[c.key]))
        fused = fuse(lexical, dense, self.weight) if dense else fuse(lexical, [], 0.0)
        hits = [_hit(chunks[i], s) for i, s in fused[: max(k, 0) * 3 if self.reranker else k]]
        if self.reranker is not None:
            hits = self.reranker(query, hits)[:k]
        return hits


def _cid(c: StoredChunk) -> str:
    return str(c.id)


def _hit(c: StoredChunk, score: float) -> Hit:
    return Hit(c.path, c.start, c.end, c.kind, c.symbol, c.language, score, c.text)


def rank_files(hits: Sequence[Hit], k: int = 10) -> list[tuple[str, float]]:
    """Files ranked by their best chunk plus a damped share of their next two.

    Chunk evidence only; ``musubi search --files`` and the API's ``files: true`` rank with
    :func:`musubi.knowledge.localise.localise`, which uses this as one signal."""
    per_file: dict[str, list[float]] = defaultdict(list)
    for h in hits:
        per_file[h.path].append(h.score)
    scored = {
        path: sorted(s, reverse=True)[0] + 0.1 * sum(sorted(s, reverse=True)[1:3])
        for path, s in per_file.items()
    }
    return sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
