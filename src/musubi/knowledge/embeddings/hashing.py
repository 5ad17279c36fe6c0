"""A fast, deterministic embedder for tests: hashed, identifier-split terms.

Not a semantic model, but texts that share terms get close vectors, so retrieval over it
behaves sensibly and tests run in milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from musubi.knowledge.embeddings.base import Embedder
from musubi.text import tokenize

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["HashingEmbedder"]


class HashingEmbedder(Embedder):
    name = "hashing-64"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0  # texts embedded so far (tests check incremental work with it)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in tokenize(text):
                digest = hashlib.blake2b(term.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        unit: npt.NDArray[np.float32] = out / norms
        return unit
