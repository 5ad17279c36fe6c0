"""Where an index lives, and opening its parts together.

``<home>/knowledge/<tenant id>/<project id>/`` for a project of the server (one collection
per tenant and project, so no query can reach another tenant's chunks), and
``<home>/knowledge/local/<hash of the path>/`` for ``musubi index PATH`` on a plain checkout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from musubi.knowledge.embeddings import Embedder, make_embedder
from musubi.knowledge.errors import IndexMissing
from musubi.knowledge.retrieval import DENSE_WEIGHT, Retriever
from musubi.knowledge.store import KnowledgeIndex
from musubi.knowledge.vectorstores import VECTOR_STORES, StoreLocation, VectorStore

__all__ = ["Workspace", "local_dir", "project_dir"]


def project_dir(home: Path, tenant_id: str, project_id: str) -> Path:
    return home / "knowledge" / tenant_id / project_id


def local_dir(home: Path, repo: Path) -> Path:
    digest = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    return home / "knowledge" / "local" / digest


@dataclass
class Workspace:
    """An index directory: the SQLite index plus one vector store per embedder."""

    path: Path
    index: KnowledgeIndex
    embedder: Embedder | None
    store: VectorStore | None

    @classmethod
    def open(
        cls,
        path: Path,
        embedder: str | Embedder | None,
        create: bool = True,
        *,
        vector_url: str | None = None,
        scope: tuple[str, str] | None = None,
    ) -> Workspace:
        """``vector_url`` (``postgresql://…``) puts the vectors in pgvector, in the collection
        of ``scope`` = (tenant id, project id) — by default ("local", the directory's name)."""
        db = path / "index.sqlite"
        if not create and not db.exists():
            raise IndexMissing("this repository has not been indexed yet; run the index first")
        index = KnowledgeIndex.open(db)
        emb = make_embedder(embedder) if isinstance(embedder, str) else embedder
        store: VectorStore | None = None
        if emb is not None:
            tenant, project = scope or ("local", path.name)
            where = StoreLocation(
                emb.dim, path / "vectors" / emb.name, tenant, f"{project}/{emb.name}", vector_url
            )
            store = VECTOR_STORES.build("pgvector" if vector_url else "numpy", where)
        return cls(path, index, emb, store)

    def retriever(self, weight: float = DENSE_WEIGHT) -> Retriever:
        return Retriever(self.index, self.embedder, self.store, weight=weight)

    def close(self) -> None:
        self.index.close()
