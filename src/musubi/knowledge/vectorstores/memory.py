"""An in-memory store: the fake of the VectorStore kind (a dict and a brute-force scan)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from musubi.knowledge.vectorstores.base import StoreLocation, VectorStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MemoryVectorStore", "open_store"]


class MemoryVectorStore(VectorStore):
    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._rows: dict[str, npt.NDArray[np.float32]] = {}

    def upsert(self, keys: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        for key, vec in zip(keys, vectors, strict=True):
            self._rows[key] = vec.copy()

    def delete(self, keys: Collection[str]) -> None:
        for key in keys:
            self._rows.pop(key, None)

    def keys(self) -> set[str]:
        return set(self._rows)

    def search(
        self, vector: npt.NDArray[np.float32], k: int, restrict: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        scored = [
            (key, float(vec @ vector))
            for key, vec in self._rows.items()
            if restrict is None or key in restrict
        ]
        scored.sort(key=lambda kv: (-kv[1], kv[0]))
        return scored[:k]


def open_store(where: StoreLocation) -> VectorStore:
    """The ``memory`` entry point: nothing kept past the process (tests, throwaway runs)."""
    return MemoryVectorStore(where.dim)
