"""What a call reserves against a token budget: an upper bound of its prompt, and the
output it may produce.

The prompt bound holds whatever the language. Every tokenizer the providers use (byte-level
BPE, SentencePiece with byte fallback) spends at least one UTF-8 byte of text per token, so
a text of ``n`` bytes is at most ``n`` tokens; counting bytes of the request's JSON
(every string it holds, with its quoting) bounds the text from above. Where the model's own
tokenizer is bundled (:mod:`musubi.gateway.tokens`), the exact count is used instead when
it is smaller. On top come a framing allowance per message and per request (chat
templates), and :data:`MEDIA_ALLOWANCE` per image, audio or file part, whose size in
tokens the gateway cannot see (that one is an allowance, not a proof).

The output is capped by the ``max_tokens`` sent upstream: the client's own, or, when it
gave none, what the budget grants (:func:`asked_output`), written into the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from functools import lru_cache
from typing import Any

from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.tokens import count_text, method_for

log = logging.getLogger("musubi.gateway")

__all__ = [
    "DEFAULT_OUTPUT",
    "MEDIA_ALLOWANCE",
    "asked_output",
    "prompt_bound",
    "with_output_cap",
]

# A message is counted as its JSON ({"role": "user", "content": "…"}: ~10 tokens of keys and
# quotes), more than a chat template adds around it (OpenAI: 3; Llama 3: 5); these cover the
# rest: the reply's priming (OpenAI: 3) and a template's own start.
MESSAGE_FRAMING = 4
REQUEST_FRAMING = 16
MEDIA_ALLOWANCE = 2_000  # per image, audio or file part
DEFAULT_OUTPUT = 4_096  # most output granted to a call that names no max_tokens
_THREAD_BYTES = 16_384  # count larger prompts off the event loop

_MEDIA = frozenset({"image_url", "input_audio", "file", "image", "audio"})


def _pieces(body: dict[str, Any]) -> tuple[list[str], int, int, int]:
    """(texts, message count, media part count, tokens given as ids)."""
    texts: list[str] = []
    media = ids = 0
    messages = body.get("messages")
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            kept = [p for p in content if not (isinstance(p, dict) and p.get("type") in _MEDIA)]
            media += len(content) - len(kept)
            m = {**m, "content": kept}
        texts.append(json.dumps(m, ensure_ascii=False))
    for key in ("prompt", "input"):
        value = body.get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                texts.append(v)
            elif isinstance(v, int):
                ids += 1
            elif isinstance(v, list):
                ids += len(v)  # token ids, one each
    for key in ("tools", "functions", "response_format", "tool_choice"):
        if body.get(key) is not None:
            texts.append(json.dumps(body[key], ensure_ascii=False))
    n_messages = len(messages) if isinstance(messages, list) else 0
    return texts, n_messages, media, ids


@lru_cache(maxsize=256)
def _has_tokenizer(model: ModelInfo) -> bool:
    return not method_for(model).startswith("estimate")


class _Tokenizers:
    """Which tokenizers are loaded. Loading one takes from a fraction of a second to
    seconds (a vocabulary of 100-200k entries), which must not stall the event loop or
    be done by several threads at once: the first call that needs one starts a single
    loading thread and is bounded by its bytes, as are the calls until it is ready."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: set[str] = set()
        self._ready: set[str] = set()

    def ready(self, model: ModelInfo) -> bool:
        method = method_for(model)
        if method in self._ready:
            return True
        with self._lock:
            if method not in self._started:
                self._started.add(method)
                threading.Thread(
                    target=self._load, args=(method, model), name=f"tokenizer {method}", daemon=True
                ).start()
        return False

    def _load(self, method: str, model: ModelInfo) -> None:
        try:
            count_text("warm up", model)
        except Exception:  # a broken install: its models stay bounded by bytes
            log.warning("cannot load the %s tokenizer; prompts are bounded by bytes", method)
            return
        self._ready.add(method)


_TOKENIZERS = _Tokenizers()


def _text_bound(texts: list[str], model: ModelInfo) -> int:
    by_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    if not (_has_tokenizer(model) and _TOKENIZERS.ready(model)):
        return by_bytes
    return min(by_bytes, sum(count_text(t, model) for t in texts))


async def prompt_bound(body: dict[str, Any], model: ModelInfo) -> int:
    """At most how many prompt tokens the provider can count for ``body`` (see above)."""
    texts, messages, media, ids = _pieces(body)
    size = sum(len(t) for t in texts)
    if size > _THREAD_BYTES and _has_tokenizer(model):
        text = await asyncio.to_thread(_text_bound, texts, model)
    else:
        text = _text_bound(texts, model)
    return text + ids + media * MEDIA_ALLOWANCE + messages * MESSAGE_FRAMING + REQUEST_FRAMING


def asked_output(body: dict[str, Any]) -> int | None:
    """The output the client capped itself at, or None when it named no limit."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def with_output_cap(body: dict[str, Any], granted: int) -> dict[str, Any]:
    """``body`` with its output capped at ``granted`` tokens (a copy)."""
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return {**body, key: granted}
