"""The VectorStore base class.

A store holds one collection: unit vectors keyed by the content hash of the text they embed,
so identical chunks (across files, branches, commits) share one vector. Search is cosine
similarity (a dot product of unit vectors); ``restrict`` limits it to some keys (filters).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["VectorStore"]


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
