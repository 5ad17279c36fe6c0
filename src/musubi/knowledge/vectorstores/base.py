"""The VectorStore base class.

A store holds one collection: unit vectors keyed by the content hash of the text they embed,
so identical chunks (across files, branches, commits) share one vector. Search is cosine
similarity (a dot product of unit vectors); ``restrict`` limits it to some keys (filters).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from musubi.kinds import Kind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["VECTOR_STORES", "StoreLocation", "VectorStore"]


class VectorStore(ABC):
    def __init__(self, dim: int) -> None:
        self.dim = dim

    @abstractmethod
    def upsert(self, keys: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Add or replace one vector per key."""

    @abstractmethod
    def delete(self, keys: Collection[str]) -> None:
        """Forget these keys (unknown keys are ignored)."""

    @abstractmethod
    def keys(self) -> set[str]:
        """Every key held."""

    @abstractmethod
    def search(
        self, vector: npt.NDArray[np.float32], k: int, restrict: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest keys with their cosine similarity, best first."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Persist what was written (no-op for stores that write through)."""

    @contextmanager
    def bulk_load(self, expected: int | None = None) -> Iterator[None]:
        """A large load follows (``expected`` rows, e.g. a project's first index): a store
        may set index maintenance aside until the block ends. By default, just the block."""
        yield

    def __len__(self) -> int:
        return len(self.keys())


@dataclass(frozen=True)
class StoreLocation:
    """Where one collection's vectors live, as a store is opened: ``directory`` (on disk,
    for stores that keep files), ``url`` (a database), and the collection's name within
    it, scoped by ``tenant``."""

    dim: int
    directory: Path
    tenant: str
    collection: str
    url: str | None = None


VECTOR_STORES: Kind[VectorStore] = Kind("vector_stores", VectorStore)
"""Entry points of ``musubi.vector_stores``: a callable taking a :class:`StoreLocation`
that returns a :class:`VectorStore` (built-ins: ``numpy``, ``pgvector``, ``memory``)."""
