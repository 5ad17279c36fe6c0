"""The VectorStore kind: content-keyed vectors of one collection (a tenant's project)."""

from __future__ import annotations

from musubi.knowledge.vectorstores.base import VECTOR_STORES, StoreLocation, VectorStore
from musubi.knowledge.vectorstores.memory import MemoryVectorStore
from musubi.knowledge.vectorstores.numpy_disk import NumpyVectorStore

__all__ = [
    "VECTOR_STORES",
    "MemoryVectorStore",
    "NumpyVectorStore",
    "StoreLocation",
    "VectorStore",
]
