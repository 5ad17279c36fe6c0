"""Fine-tuning fixtures: a tiny random Llama-shaped base model (built once per session
from a config, with a tokenizer trained on the spot) and a memorisation set."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from musubi.settings import Settings
from tests.conftest import Api

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


# Jobs run on SQLite here (the default install); the API's cross-tenant cases run on both
# backends in tests/api/test_isolation.py.
@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, tiny_base: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        max_body_bytes=64 * 1024,
        bootstrap_key=None,
        finetune_models=f"tiny-llama={tiny_base},broken={tmp_path / 'nothing-here'}",
        finetune_lease_seconds=3,
    )


@pytest.fixture
async def sdk(api: Api) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=api.owner_key, max_retries=0)
    try:
        yield client
    finally:
        await client.close()
