"""Embeddings from a model provider, through the gateway, as the calling key.

Selected with ``MUSUBI_KNOWLEDGE_EMBEDDER=gateway:<model>`` (e.g.
``gateway:text-embedding-3-small``): each tenant's own provider credentials, routing,
cache, quotas and usage ledger apply to every batch of chunks, as to a live
``/v1/embeddings`` call. Indexing runs in a worker thread; the calls are scheduled on the
server's event loop, where the gateway lives.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from musubi.knowledge.embeddings.base import Embedder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PREFIX", "GatewayEmbedder"]

PREFIX = "gateway:"
Run = Callable[[list[str]], Awaitable[dict[str, Any]]]


class GatewayEmbedder(Embedder):
    """``run`` sends one OpenAI-style embeddings request (a list of texts) and returns the
    response; it runs on ``loop``. The dimension is learnt from a first, one-word call."""

    batch_size = 64

    def __init__(self, model: str, run: Run, loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self.name = "gateway-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model)
        self._run, self._loop = run, loop
        self.dim = len(self._call(["dimension"])[0])

    def _call(self, texts: list[str]) -> list[list[float]]:
        future = asyncio.run_coroutine_threadsafe(self._wrap(texts), self._loop)
        data = future.result()
        rows = sorted(data.get("data") or [], key=lambda d: int(d.get("index", 0)))
        if len(rows) != len(texts) or not all(isinstance(r.get("embedding"), list) for r in rows):
            raise ValueError(f"the embeddings of {self.model!r} came back malformed")
        return [r["embedding"] for r in rows]

    async def _wrap(self, texts: list[str]) -> dict[str, Any]:
        return await self._run(texts)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            rows += self._call(list(texts[i : i + self.batch_size]))
        out = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        result: npt.NDArray[np.float32] = out / norms
        return result
