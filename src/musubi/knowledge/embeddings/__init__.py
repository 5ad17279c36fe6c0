"""The Embedder kind: text -> unit vectors. Built-ins: ``minilm`` (default) and ``hashing``."""

from __future__ import annotations

from musubi.knowledge.embeddings.base import Embedder, make_embedder

__all__ = ["Embedder", "make_embedder"]
