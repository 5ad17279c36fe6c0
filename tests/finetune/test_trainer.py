"""The trainer on a tiny random Llama-shaped model, on the CPU: a LoRA learns a
memorisation set, is saved, loaded and merged; packing keeps samples apart; only answers
are learned; a stopped run resumes from its checkpoint with the same data order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from musubi.finetune.trainer import (
    IGNORE,
    BaseLoadError,
    TrainResult,
    TrainSpec,
    encode_chat,
    generate,
    load_base,
    load_merged,
    train,
)
from tests.finetune.conftest import EXAMPLES, FACTS, FAST


@dataclass
class Recorder:
    """The hooks, recording; ``stop_after_checkpoint`` stops the run at its first one."""

    stop_after_checkpoint: bool = False
    steps: dict[int, tuple[float, list[int]]] = field(default_factory=dict)
    checkpoints: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def event(self, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append(message)

    def step(self, step: int, loss: float, samples: list[int], metrics: dict[str, Any]) -> None:
        self.steps[step] = (loss, samples)

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        assert (path / "adapter_model.safetensors").is_file()
        self.checkpoints.append(step)

    def should_stop(self) -> bool:
        return self.stop_after_checkpoint and bool(self.checkpoints)


def _spec(base: Path, out: Path) -> TrainSpec:
    return TrainSpec(
        base=base,
        output_dir=out,
        n_epochs=FAST["n_epochs"],
        batch_size=FAST["batch_size"],
        learning_rate=2e-4 * FAST["learning_rate_multiplier"],
        seed=7,
    )


@pytest.fixture(scope="module")
def trained(
    tiny_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Recorder]:
    hooks = Recorder()
    out = tmp_path_factory.mktemp("run")
    return train(_spec(tiny_base, out), EXAMPLES, EXAMPLES[:3], hooks), hooks


def test_the_loss_falls_and_the_adapter_answers_what_the_base_cannot(
    tiny_base: Path, trained: tuple[TrainResult, Recorder]
) -> None:
    result, hooks = trained
    assert result.steps == 30 and len(result.losses) == 30  # 12 examples / 4, 10 epochs
    first, last = result.losses[0], result.losses[-1]
    assert last < first - 0.5, result.losses
    assert any("validation loss" in e for e in hooks.events)
    assert result.adapter_dir is not None
    merged, tokenizer = load_merged(tiny_base, result.adapter_dir)
    base, base_tokenizer = load_base(tiny_base)
    for question, answer in FACTS:
        asked = [{"role": "user", "content": question}]
        text, _, _, finish = generate(merged, tokenizer, asked, max_new_tokens=12)
        assert (text, finish) == (answer, "stop")
        assert generate(base, base_tokenizer, asked, max_new_tokens=12)[0] != answer


def test_the_saved_adapter_loads_back_and_merges_to_the_same_outputs(
    tiny_base: Path, trained: tuple[TrainResult, Recorder]
) -> None:
    import torch
    from peft import PeftModel

    result, _ = trained
    assert result.adapter_dir is not None
    assert (result.adapter_dir / "adapter_config.json").is_file()
    model, tokenizer = load_base(tiny_base)
    adapted = PeftModel.from_pretrained(model, str(result.adapter_dir)).eval()
    ids = torch.tensor([encode_chat(tokenizer, EXAMPLES[0], 2048)["input_ids"]])
    with torch.inference_mode():
        unmerged = adapted(input_ids=ids, use_cache=False).logits
    merged, _ = load_merged(tiny_base, result.adapter_dir)
    with torch.inference_mode():
        after = merged(input_ids=ids, use_cache=False).logits
        plain = load_base(tiny_base)[0](input_ids=ids, use_cache=False).logits
    assert torch.allclose(unmerged, after, atol=1e-4)
    assert not torch.allclose(plain, after, atol=1e-2)  # the adapter did change the model


def test_only_the_answers_are_learned(tiny_base: Path) -> None:
    _, tokenizer = load_base(tiny_base)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Which port does the gateway use?"},
        {"role": "assistant", "content": "Port 8931"},
        {"role": "user", "content": "And the codename?"},
        {"role": "assistant", "content": "Bluefin-42", "weight": "0"},
    ]
    row = encode_chat(tokenizer, messages, 2048)
    learned = [t for t in row["labels"] if t != IGNORE]
    assert tokenizer.decode(learned) == "Port 8931<|im_end|>\n"
    # the weight-0 answer is context: in the input, not learned
    assert "Bluefin-42" not in tokenizer.decode(learned)


def test_packed_samples_do_not_attend_to_each_other(tiny_base: Path) -> None:
    import torch

    from musubi.finetune.trainer import _collator

    model, tokenizer = load_base(tiny_base)
    model.config.use_cache = False
    rows = [encode_chat(tokenizer, m, 2048) for m in EXAMPLES[:3]]
    batch = _collator(tokenizer.pad_token_id, True)(
        [dict(r, sample_id=i) for i, r in enumerate(rows)]
    )
    batch.pop("sample_ids")
    assert batch["input_ids"].shape[0] == 1  # one packed row
    with torch.inference_mode():
        packed = model(**batch).logits[0]
        start = 0
        for r in rows:
            n = len(r["input_ids"])
            alone = model(input_ids=torch.tensor([r["input_ids"]])).logits[0]
            assert torch.allclose(packed[start : start + n], alone, atol=1e-5)
            start += n


def test_a_stopped_run_resumes_with_the_same_data_order_and_losses(
    tiny_base: Path, tmp_path: Path, trained: tuple[TrainResult, Recorder]
) -> None:
    _, reference = trained
    first = Recorder(stop_after_checkpoint=True)
    stopped = train(_spec(tiny_base, tmp_path), EXAMPLES, EXAMPLES[:3], first)
    assert stopped.stopped and stopped.adapter_dir is None
    # the end of the first epoch, then where it stopped (mid-epoch: the Trainer saves then)
    assert first.checkpoints == [3, 4]
    again = Recorder()
    resumed = train(_spec(tiny_base, tmp_path), EXAMPLES, EXAMPLES[:3], again)
    assert resumed.resumed_from == 4
    assert "Resuming from checkpoint at step 4" in again.events
    assert min(again.steps) == 5 and max(again.steps) == 30
    for step, (loss, samples) in again.steps.items():
        ref_loss, ref_samples = reference.steps[step]
        assert samples == ref_samples, step
        assert loss == pytest.approx(ref_loss, rel=1e-4), step


def test_a_base_model_that_cannot_load_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(BaseLoadError, match="cannot load the base model"):
        load_base(tmp_path / "broken")
    with pytest.raises(BaseLoadError, match=r"neither a model folder nor a \.gguf"):
        load_base(tmp_path / "missing")
