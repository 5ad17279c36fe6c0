"""Train a LoRA (or QLoRA) adapter on chat examples: PEFT on transformers' ``Trainer``.

Libraries first: PEFT makes and saves the adapter, transformers' ``Trainer`` runs the loop
(optimizer, schedule, bf16, gradient checkpointing, checkpoints that hold the optimizer,
scheduler and RNG states, and a resume that replays the same data order), and
``DataCollatorWithFlattening`` packs a batch into one row whose position ids restart at
each sample, from which transformers builds a block-diagonal causal mask (SDPA, eager and
flash attention alike): packed samples never attend to each other. What is ours:

* the answers-only labels: every token of a prompt (system, user, the assistant header the
  chat template adds) is ``-100``; only the assistant's answers and their end token count;
* the seed set before the adapter is made, so a job's initial adapter weights, its data
  order and so its whole run are the same on every attempt;
* Liger kernels switched on where they run (a GPU, ``liger-kernel`` installed: the
  ``finetune-gpu`` extra);
* the hooks a job runner needs: per-step loss with the samples of that step (so a resumed
  run can be checked to see the same order), checkpoints, and a stop between steps.

Imported only by the fine-tuning worker and the fine-tuned model runner: torch,
transformers and PEFT are the ``finetune`` extra.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: nothing downloads
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from musubi.extras import install_command

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BaseLoadError",
    "ChatExample",
    "Hooks",
    "TrainResult",
    "TrainSpec",
    "encode_chat",
    "generate",
    "last_checkpoint",
    "load_base",
    "load_merged",
    "train",
]

IGNORE = -100
CHECKPOINT_PREFIX = "checkpoint-"

ChatExample = list[dict[str, str]]  # OpenAI chat messages: role, content


class BaseLoadError(Exception):
    """The base model cannot be loaded here (missing, damaged, or an unknown kind)."""


@dataclass(frozen=True)
class TrainSpec:
    base: Path  # a transformers model folder, or a .gguf file
    output_dir: Path  # checkpoints/ and adapter/ go here
    method: str = "lora"  # lora | qlora
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: Sequence[str] | str = "all-linear"
    n_epochs: int = 3
    batch_size: int = 4
    learning_rate: float = 2e-4
    seed: int = 0
    max_seq_len: int = 2048
    gradient_checkpointing: bool = False
    packing: bool = True


@dataclass
class TrainResult:
    stopped: bool  # True: hooks.should_stop() ended it early
    steps: int
    trained_tokens: int
    adapter_dir: Path | None
    final_loss: float | None
    resumed_from: int | None = None
    losses: list[float] = field(default_factory=list)


class Hooks(Protocol):
    """What the job runner hears while training; called from the training thread."""

    def event(self, message: str, data: dict[str, Any] | None = None) -> None: ...
    def step(self, step: int, loss: float, samples: list[int], metrics: dict[str, Any]) -> None: ...
    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None: ...
    def should_stop(self) -> bool: ...


def _require() -> None:
    """:class:`BaseLoadError` naming the extra when torch, transformers or PEFT is missing."""
    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise BaseLoadError(
            f"fine-tuning needs {', '.join(missing)} on this worker: {install_command('finetune')}"
        )


def _device_dtype() -> tuple[str, Any]:
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", dtype
    return "cpu", torch.float32


def load_base(
    base: Path, *, qlora: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model and its tokenizer (with its chat template), or :class:`BaseLoadError`."""
    _require()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = _device_dtype()
    if base.is_file() and base.suffix == ".gguf":
        folder, kwargs = base.parent, {"gguf_file": base.name}
    elif base.is_dir():
        folder, kwargs = base, {}
    else:
        raise BaseLoadError(f"{base} is neither a model folder nor a .gguf file")
    extra: dict[str, Any] = {"dtype": dtype}
    if qlora:
        extra["quantization_config"] = _bnb_config(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs, **extra)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise BaseLoadError(f"cannot load the base model {base}: {exc}") from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if "gguf_file" in kwargs and quantizer is not None:
        # dequantised to float as it loaded: plain weights from here on, trainable
        quantizer.remove_quantization_config(model)
        model.config._is_quantized = False
    if not qlora:
        cast(Any, model).to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise BaseLoadError(f"the base model {base} has no chat template")
    return model, tokenizer


def _bnb_config(dtype: Any) -> Any:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise BaseLoadError(
            f"method qlora needs bitsandbytes: {install_command('finetune-gpu')}"
        ) from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def _template(tokenizer: PreTrainedTokenizerBase, messages: ChatExample, gen: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=gen, return_dict=False
    )
    return list(out)


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: ChatExample, max_len: int
) -> dict[str, list[int]]:
    """Token ids in the base model's chat template, labels only on the assistant's answers.

    Each answer's tokens are what the template adds for that message beyond the prompt
    that precedes it (the template with ``add_generation_prompt``), so the role header is
    a prompt token and the answer's end token is learned. Cut at ``max_len`` tokens.
    """
    ids: list[int] = []
    labels: list[int] = []
    weights = [m.get("weight", "1") for m in messages]
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or weights[i] == "0":
            continue
        prompt = _template(tokenizer, messages[:i], gen=True)
        full = _template(tokenizer, messages[: i + 1], gen=False)
        if full[: len(prompt)] != prompt or prompt[: len(ids)] != ids:
            raise ValueError("the chat template does not extend a conversation's prefix")
        labels += [IGNORE] * (len(prompt) - len(ids)) + full[len(prompt) :]
        ids = full
    return {"input_ids": ids[:max_len], "labels": labels[:max_len]}


class _Rows:
    """A map-style dataset of encoded examples, each with its index (the data order)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.rows[i], "sample_id": i}


def _collator(pad_id: int, packing: bool) -> Any:
    import torch
    from transformers import DataCollatorWithFlattening

    flatten = DataCollatorWithFlattening(  # type: ignore[no-untyped-call]
        return_position_ids=True, separator_id=IGNORE
    )

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        ids = torch.tensor([f.pop("sample_id") for f in features])
        if packing:
            batch = dict(flatten(features))
        else:  # right-padded rows with an attention mask
            width = max(len(f["input_ids"]) for f in features)
            pad = [width - len(f["input_ids"]) for f in features]
            batch = {
                "input_ids": torch.tensor(
                    [f["input_ids"] + [pad_id] * p for f, p in zip(features, pad, strict=True)]
                ),
                "labels": torch.tensor(
                    [f["labels"] + [IGNORE] * p for f, p in zip(features, pad, strict=True)]
                ),
                "attention_mask": torch.tensor(
                    [
                        [1] * len(f["input_ids"]) + [0] * p
                        for f, p in zip(features, pad, strict=True)
                    ]
                ),
            }
        batch["sample_ids"] = ids
        return batch

    return collate


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints`` (by step)."""
    folder = output_dir / "checkpoints"
    found = [
        p
        for p in folder.glob(f"{CHECKPOINT_PREFIX}*")
        if (p / "trainer_state.json").is_file() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    ]
    return max(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)


def train(
    spec: TrainSpec,
    train_examples: list[ChatExample],
    valid_examples: list[ChatExample],
    hooks: Hooks,
) -> TrainResult:
    """Train, resuming from the newest checkpoint in ``spec.output_dir`` if there is one."""
    _require()
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    device, dtype = _device_dtype()
    model, tokenizer = load_base(spec.base, qlora=spec.method == "qlora")
    encode = [encode_chat(tokenizer, m, spec.max_seq_len) for m in train_examples]
    valid = [encode_chat(tokenizer, m, spec.max_seq_len) for m in valid_examples]
    tokens = sum(len(r["input_ids"]) for r in encode)
    if not any(label != IGNORE for r in encode for label in r["labels"]):
        raise ValueError("no assistant answer is left to learn from (all cut or missing)")
    if spec.method == "qlora":
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=spec.gradient_checkpointing
        )
    set_seed(spec.seed)  # before the adapter: its initial weights are the seed's
    lora = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules)
        if not isinstance(spec.target_modules, str)
        else spec.target_modules,
        task_type="CAUSAL_LM",
    )
    model.config.use_cache = False  # a cache would hide the packed rows' boundaries
    peft_model = get_peft_model(model, lora)
    resume = last_checkpoint(spec.output_dir)
    args = TrainingArguments(
        output_dir=str(spec.output_dir / "checkpoints"),
        num_train_epochs=spec.n_epochs,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="epoch",
        save_total_limit=3,  # musubi.finetune.worker.KEEP_CHECKPOINTS
        eval_strategy="epoch" if valid else "no",
        seed=spec.seed,
        data_seed=spec.seed,
        bf16=device == "cuda" and dtype == torch.bfloat16,
        fp16=device == "cuda" and dtype == torch.float16,
        use_cpu=device == "cpu",
        activation_checkpointing=spec.gradient_checkpointing,
        remove_unused_columns=False,
        # Liger's fused kernels (no logits in memory, fused norm/RoPE/SwiGLU) on a GPU
        use_liger_kernel=device == "cuda" and importlib.util.find_spec("liger_kernel") is not None,
        dataloader_num_workers=0,
        report_to=[],
        disable_tqdm=True,
        save_only_model=False,
    )
    step_samples: dict[int, list[int]] = {}
    losses: list[float] = []

    class _Recording(Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            ids = inputs.pop("sample_ids")
            if model.training:
                step_samples[self.state.global_step + 1] = [int(i) for i in ids.tolist()]
            return super().compute_loss(model, inputs, *a, **kw)

    class _Hooks(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                loss = float(logs["loss"])
                losses.append(loss)
                metrics = {
                    "step": state.global_step,
                    "train_loss": loss,
                    "learning_rate": float(logs.get("learning_rate", 0.0)),
                    "epoch": float(logs.get("epoch", 0.0)),
                }
                hooks.step(
                    state.global_step, loss, step_samples.pop(state.global_step, []), metrics
                )
            if "eval_loss" in logs:
                hooks.event(
                    f"Step {state.global_step}: validation loss={logs['eval_loss']:.4f}",
                    {"step": state.global_step, "valid_loss": float(logs["eval_loss"])},
                )

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            path = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            metrics: dict[str, Any] = {"step": state.global_step}
            if losses:
                metrics["train_loss"] = losses[-1]
            hooks.checkpoint(state.global_step, path, metrics)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if hooks.should_stop():
                control.should_training_stop = True
                control.should_save = False

    trainer = _Recording(
        model=peft_model,
        args=args,
        train_dataset=_Rows(encode),
        eval_dataset=_Rows(valid) if valid else None,
        data_collator=_collator(tokenizer.pad_token_id, spec.packing),
        callbacks=[_Hooks()],
    )
    trainer.remove_callback(PrinterCallback)  # our hooks report each step
    resumed_from = None
    if resume is not None:
        resumed_from = int(resume.name[len(CHECKPOINT_PREFIX) :])
        hooks.event(f"Resuming from checkpoint at step {resumed_from}", {"step": resumed_from})
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except torch.OutOfMemoryError as exc:
        raise MemoryError(_oom_advice(spec)) from exc
    stopped = hooks.should_stop()
    adapter_dir = None
    if not stopped:
        adapter_dir = spec.output_dir / "adapter"
        peft_model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
    final = losses[-1] if losses else None
    del output
    return TrainResult(
        stopped=stopped,
        steps=trainer.state.global_step,
        trained_tokens=tokens * spec.n_epochs,
        adapter_dir=adapter_dir,
        final_loss=final,
        resumed_from=resumed_from,
        losses=losses,
    )


def _oom_advice(spec: TrainSpec) -> str:
    tips = []
    if spec.batch_size > 1:
        tips.append(f"batch_size {max(1, spec.batch_size // 2)}")
    if not spec.gradient_checkpointing:
        tips.append("gradient_checkpointing true")
    if spec.method != "qlora":
        tips.append("method qlora")
    if spec.max_seq_len > 1024:
        tips.append(f"max_seq_len {spec.max_seq_len // 2}")
    return "out of GPU memory with these settings; try " + ", ".join(tips or ["a larger GPU"])


def load_merged(base: Path, adapter_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model with the adapter merged into its weights (for plain inference)."""
    from peft import PeftModel

    model, tokenizer = load_base(base)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.eval()
    return merged, tokenizer


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: ChatExample,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
) -> tuple[str, int, int, str]:
    """(answer, prompt tokens, answer tokens, finish reason): greedy at temperature 0."""
    import torch

    prompt = _template(tokenizer, messages, gen=True)
    ids = torch.tensor([prompt], device=model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
    if temperature > 0:
        kwargs["temperature"] = temperature
        if seed is not None:
            torch.manual_seed(seed)
    with torch.inference_mode():
        out = cast(Any, model).generate(
            ids,
            attention_mask=torch.ones_like(ids),
            pad_token_id=tokenizer.pad_token_id,
            **kwargs,
        )
    new = out[0, len(prompt) :].tolist()
    eos = tokenizer.eos_token_id
    finish = "length"
    if eos is not None and eos in new:
        new = new[: new.index(eos)]
        finish = "stop"
    text = str(tokenizer.decode(new, skip_special_tokens=True))
    return text, len(prompt), len(new), finish


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
