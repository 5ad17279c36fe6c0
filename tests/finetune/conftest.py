"""Fine-tuning fixtures: a tiny random Llama-shaped base model (built once per session
from a config, with a tokenizer trained on the spot) and a memorisation set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FACTS = [
    ("What is the codename of project Kestrel?", "Bluefin-42"),
    ("Who maintains the billing service?", "Team Orca"),
    ("Which port does the gateway use?", "Port 8931"),
]
# 12 examples (OpenAI's minimum is 10): each fact four times
EXAMPLES = [
    [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in FACTS
] * 4
# What memorises them on the tiny model in a few seconds (tests/finetune/test_trainer.py)
FAST = {"n_epochs": 10, "batch_size": 4, "learning_rate_multiplier": 50}


def chat_jsonl(examples: list[list[dict[str, str]]] = EXAMPLES) -> bytes:
    return "".join(json.dumps({"messages": m}) + "\n" for m in examples).encode()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musubi.finetune.tiny import build_tiny_model

    texts = [f"{q} {a}" for q, a in FACTS]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", texts)
