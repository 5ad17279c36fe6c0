"""The Embedder base class and the registry that builds one by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from musubi.errors import InvalidInput

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


def _hashing() -> Embedder:
    from musubi.knowledge.embeddings.hashing import HashingEmbedder

    return HashingEmbedder()


def _minilm() -> Embedder:
    from musubi.knowledge.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


EMBEDDERS = {"minilm": _minilm, "hashing": _hashing}


def make_embedder(name: str) -> Embedder:
    """The built-in embedder called ``name`` (``minilm`` or ``hashing``)."""
    if name.startswith("gateway:"):
        raise InvalidInput(
            f"embedder {name!r} calls the gateway as a key: use the server's API "
            "(/v1/projects/{id}/knowledge/...), not a local index",
            field="embedder",
        )
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}", field="embedder"
        ) from None
    return factory()
