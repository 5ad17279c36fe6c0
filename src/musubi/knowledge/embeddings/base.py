"""The Embedder base class, and the kind that builds one by name from entry points."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from musubi.errors import InvalidInput
from musubi.kinds import Kind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["EMBEDDERS", "Embedder", "make_embedder"]


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors of :attr:`dim` dimensions.

    ``name`` identifies the model (vectors of different names never mix in one store).
    Documents and queries may be embedded differently (some models prefix them).
    """

    name: str
    dim: int
    batch_size: int = 32

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, in order; an empty input gives shape ``(0, dim)``."""

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        vector: npt.NDArray[np.float32] = self.embed_documents([text])[0]
        return vector


EMBEDDERS: Kind[Embedder] = Kind("embedders", Embedder)
"""Entry points of ``musubi.embedders``: a callable taking no argument that returns an
:class:`Embedder` (built-ins: ``minilm``, ``hashing``)."""


def make_embedder(name: str) -> Embedder:
    """The installed embedder called ``name`` (built-in: ``minilm`` or ``hashing``)."""
    if name.startswith("gateway:"):
        raise InvalidInput(
            f"embedder {name!r} calls the gateway as a key: use the server's API "
            "(/v1/projects/{id}/knowledge/...), not a local index",
            field="embedder",
        )
    if name not in EMBEDDERS.names():
        raise InvalidInput(
            f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS.names())}",
            field="embedder",
        )
    return EMBEDDERS.build(name)
