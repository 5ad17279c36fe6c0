"""LoRA training throughput: MUSUBI's trainer settings against plain transformers + PEFT.

Run on a GPU host (no download: models are built from configs with random weights):

    pip install -e '.[finetune-gpu]'    # transformers, peft, bitsandbytes, liger-kernel
    python bench/finetune_gpu.py                       # the three shapes below
    python bench/finetune_gpu.py --models qwen2.5-0.5b --steps 20

On the CPU, as a smoke run of the same code: ``python bench/finetune_gpu.py --device cpu
--models tiny --steps 3``.

For each shape: LoRA r16 (alpha 32) on every linear layer, sequence length 2048, bf16,
AdamW on the adapter, ``--steps`` optimizer steps after 2 warm-up steps, in the same
process, one variant after the other:

* ``plain``: transformers + PEFT as a user would write it (SDPA attention, the model's own
  loss, which materialises the full logits);
* ``musubi``: what :mod:`musubi.finetune.trainer` turns on: Liger kernels when installed
  (fused linear + cross-entropy without the logits, RMSNorm, RoPE, SwiGLU: the Trainer's
  ``use_liger_kernel``), the model's cache off, samples packed in one row per micro-batch
  with position ids (no padding, no attention across samples).

Printed per row: tokens/s, peak GPU memory (``torch.cuda.max_memory_allocated``), and MFU
= 6 x parameters x tokens/s + attention (12 x layers x hidden x seq per token) over the
GPU's dense bf16 peak (``--peak-tflops``, 989 for an H100 SXM). Same-run ratios are what
to compare; a number from another card is not.
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    # from the public configs of the models (architecture only: weights are random)
    "qwen2.5-0.5b": dict(
        kind="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
        tie_word_embeddings=True, rope_theta=1_000_000.0, micro_batch=8, checkpointing=False,
    ),
    "qwen2.5-1.5b": dict(
        kind="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
        tie_word_embeddings=True, rope_theta=1_000_000.0, micro_batch=8, checkpointing=True,
    ),
    "llama-3.1-8b": dict(
        kind="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
        tie_word_embeddings=False, rope_theta=500_000.0, micro_batch=4, checkpointing=True,
    ),
    "tiny": dict(
        kind="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=512,
        tie_word_embeddings=False, rope_theta=10_000.0, micro_batch=2, checkpointing=False,
    ),
}  # fmt: skip


@dataclass
class Row:
    model: str
    variant: str
    micro_batch: int
    checkpointing: bool
    tokens_per_s: float
    peak_gib: float
    mfu: float | None


def _model(shape: dict[str, Any], device: str, dtype: Any, seq: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    keys = (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "vocab_size", "tie_word_embeddings", "rope_theta",
    )  # fmt: skip
    cfg = {k: shape[k] for k in keys} | {"max_position_embeddings": max(seq, 4096)}
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM)
        if shape["kind"] == "qwen2"
        else (LlamaConfig, LlamaForCausalLM)
    )
    config = config_cls(**cfg, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        return model_cls(config).to(dtype)


def _lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    )


def _params(shape: dict[str, Any]) -> int:
    h, i, n, v = (
        shape["hidden_size"], shape["intermediate_size"],
        shape["num_hidden_layers"], shape["vocab_size"],
    )  # fmt: skip
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    layer = h * h * 2 + h * kv * 2 + 3 * h * i
    return n * layer + v * h * (1 if shape["tie_word_embeddings"] else 2)


def run_variant(name: str, variant: str, args: argparse.Namespace) -> Row:
    import torch

    shape = SHAPES[name]
    device, dtype = args.device, torch.bfloat16 if args.device == "cuda" else torch.float32
    mb = args.micro_batch or shape["micro_batch"]
    ckpt = shape["checkpointing"] if args.checkpointing is None else args.checkpointing
    model = _model(shape, device, dtype, args.seq)
    model.config.use_cache = False
    if variant == "musubi" and device == "cuda":
        try:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance

            _apply_liger_kernel_to_instance(model=model)
        except ImportError:
            print("  (liger-kernel not installed: the musubi row runs without it)")
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    peft_model = _lora(model)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    vocab = shape["vocab_size"]

    def batch() -> dict[str, Any]:
        ids = torch.randint(0, vocab, (mb, args.seq), device=device)
        if variant == "musubi":  # one packed row: mb samples, positions restarting at each
            flat = ids.reshape(1, -1)
            pos = torch.arange(args.seq, device=device).repeat(mb).reshape(1, -1)
            labels = flat.clone()
            labels[0, :: args.seq] = -100  # no sample learns from the one before it
            return {"input_ids": flat, "labels": labels, "position_ids": pos}
        return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}

    def step() -> None:
        loss = peft_model(**batch()).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tokens_per_s = args.steps * mb * args.seq / elapsed
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    flops_per_token = (
        6 * _params(shape) + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * args.seq
    )
    mfu = tokens_per_s * flops_per_token / (args.peak_tflops * 1e12) if device == "cuda" else None
    return Row(name, variant, mb, ckpt, tokens_per_s, peak, mfu)


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b,llama-3.1-8b")
    parser.add_argument("--variants", default="plain,musubi")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--checkpointing", type=lambda s: s == "1", default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        for variant in args.variants.split(","):
            try:
                rows.append(run_variant(name, variant, args))
            except Exception as exc:  # an OOM in one row must not hide the others
                print(f"{name} {variant}: failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            finally:
                _free(args.device)
            r = rows[-1]
            print(f"  done {name} {variant}: {r.tokens_per_s:,.0f} tokens/s", flush=True)
    print()
    print(
        f"{'model':14} {'variant':8} {'mb':>3} {'ckpt':>5} {'tokens/s':>12} "
        f"{'peak GiB':>9} {'MFU':>6}"
    )
    for r in rows:
        mfu = f"{r.mfu:.1%}" if r.mfu is not None else "-"
        print(
            f"{r.model:14} {r.variant:8} {r.micro_batch:>3} {r.checkpointing!s:>5} "
            f"{r.tokens_per_s:>12,.0f} {r.peak_gib:>9.1f} {mfu:>6}"
        )


if __name__ == "__main__":
    main()
