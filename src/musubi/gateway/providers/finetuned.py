"""Fine-tuned adapters as models: run here (base + merged LoRA), or on a vLLM server.

Neither kind is configured by a tenant: the gateway adds them to a tenant's routing table
from that tenant's succeeded fine-tuning jobs (:mod:`musubi.finetune.serving`), so an
adapter is a model of its tenant only. Both refuse a model their credential does not list,
which also closes the ``<credential>/<model>`` form of a name to another tenant's adapter.

* :class:`FineTunedLocal` (``finetuned``): transformers runs the base model with the
  adapter merged into its weights, on the CPU or a GPU, in a worker thread. What loads and
  runs it is the credential's :class:`AdapterEngine` (``options["engine"]``), given by the
  credential's source (:class:`musubi.finetune.serving.TransformersEngine`): the gateway
  does not import the fine-tuning package, which builds on the gateway. Merged once per
  adapter and kept (the two most recently used), so a call after the first costs a plain
  forward pass. Chat only; greedy at temperature 0. The simplest honest path: the numpy
  engine of the offline model (:mod:`musubi.offline.llama`) runs GGUF Llama weights only,
  while adapters are trained on transformers models of any architecture; transformers is
  installed wherever a job can train (the ``finetune`` extra).
* :class:`VllmLora` (``vllm-lora``): an OpenAI-compatible vLLM server that loaded the
  adapter under its model name (``--enable-lora``; the worker calls its
  ``/v1/load_lora_adapter``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, ClassVar, Protocol

from musubi.errors import UpstreamError
from musubi.gateway.chunks import replay_as_chunks
from musubi.gateway.providers.base import Op, Provider, UpstreamStatus
from musubi.gateway.providers.openai_compat import OpenAICompatible

__all__ = ["AdapterEngine", "FineTunedLocal", "VllmLora"]

DEFAULT_MAX_TOKENS = 256
KEEP = 2  # merged models kept in memory

_lock = threading.Lock()
_merged: OrderedDict[tuple[str, str], tuple[Any, Any, threading.Lock]] = OrderedDict()


class AdapterEngine(Protocol):
    """Loads a base model with an adapter merged in, and answers chat messages with it."""

    def load_merged(self, base: Path, adapter_dir: Path) -> tuple[Any, Any]: ...

    def generate(
        self,
        model: Any,
        tokenizer: Any,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> tuple[str, int, int, str]:
        """(answer, prompt tokens, answer tokens, finish reason)"""
        ...


def _load(engine: AdapterEngine, base: str, adapter: str) -> tuple[Any, Any, threading.Lock]:
    with _lock:
        key = (base, adapter)
        if key in _merged:
            _merged.move_to_end(key)
            return _merged[key]
    model, tokenizer = engine.load_merged(Path(base), Path(adapter))
    with _lock:
        _merged[key] = (model, tokenizer, threading.Lock())
        while len(_merged) > KEEP:
            _merged.popitem(last=False)
        return _merged[key]


def _refuse(provider: Provider, model: str) -> None:
    if not provider.credential.trusted or model not in provider.credential.models:
        raise UpstreamStatus(
            provider.credential.name, 404, f"model {model!r} is not served here", None
        )


class FineTunedLocal(Provider):
    """Adapters of one tenant, merged into their base model and run in this process."""

    name: ClassVar[str] = "finetuned"
    default_base_url: ClassVar[str] = ""
    needs_key: ClassVar[bool] = False
    server_only: ClassVar[bool] = True

    def _parse(self, op: Op, body: dict[str, Any], model: str) -> tuple[list[dict[str, str]], int]:
        _refuse(self, model)

        def bad(message: str) -> UpstreamStatus:
            return UpstreamStatus(self.credential.name, 400, f"{model}: {message}", None)

        if op != "chat":
            raise bad("a fine-tuned chat model: use /v1/chat/completions")
        if body.get("n") not in (None, 1):
            raise bad("n: only one choice per request")
        if body.get("tools") or body.get("functions"):
            raise bad("tools: not supported by the local runner")
        messages = []
        for m in body.get("messages") or []:
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            if not isinstance(content, str):
                raise bad("messages: text content only")
            role = "system" if m.get("role") == "developer" else str(m.get("role"))
            messages.append({"role": role, "content": content})
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 4096:
            raise bad("max_tokens: an integer from 1 to 4096")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise bad("seed: an integer")
        temperature = body.get("temperature")
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not 0 <= temperature <= 2
        ):
            raise bad("temperature: a number from 0 to 2")
        return messages, limit

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        messages, limit = self._parse(op, body, model)
        where = self.credential.options["adapters"][model]
        temperature = body.get("temperature")
        temp = float(temperature) if isinstance(temperature, int | float) else 0.0

        engine: AdapterEngine = self.credential.options["engine"]

        def run() -> tuple[str, int, int, str]:
            merged, tokenizer, lock = _load(engine, where["base"], where["adapter"])
            with lock:
                return engine.generate(
                    merged,
                    tokenizer,
                    messages,
                    max_new_tokens=limit,
                    temperature=temp,
                    seed=body.get("seed"),
                )

        try:
            text, prompt_tokens, completion_tokens, finish = await asyncio.to_thread(run)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UpstreamError(
                self.credential.name, f"the fine-tuned model failed: {exc}"
            ) from exc
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        for c in replay_as_chunks(await self.send(op, body, model)):
            yield c


class VllmLora(OpenAICompatible):
    """A vLLM server with this tenant's adapters loaded under their model names."""

    name: ClassVar[str] = "vllm-lora"
    server_only: ClassVar[bool] = True

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        _refuse(self, model)
        return await super().send(op, body, model)

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        _refuse(self, model)
        async for c in super().stream(op, body, model):
            yield c
