"""With MUSUBI_FINETUNE_VLLM_URL set, a succeeded adapter is loaded on the vLLM server
(``POST /v1/load_lora_adapter``, vLLM's runtime LoRA API) and the gateway sends its model
name there; another tenant cannot reach it. The vLLM server is a fake that follows vLLM's
OpenAI-compatible API: it serves a LoRA name only once loaded."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from musubi.finetune.worker import FineTuneWorker
from musubi.settings import Settings
from tests.api.helpers import new_tenant
from tests.conftest import Api
from tests.finetune.conftest import chat_jsonl


class FakeVllm:
    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}  # lora name -> path
        self.calls: list[dict[str, Any]] = []

    async def load(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not os.path.isfile(os.path.join(body["lora_path"], "adapter_config.json")):  # noqa: ASYNC240
            return web.json_response({"error": {"message": "no adapter there"}}, status=400)
        self.loaded[body["lora_name"]] = body["lora_path"]
        return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        model = body["model"]
        if model not in self.loaded:
            error = {"message": f"The model `{model}` does not exist.", "code": 404}
            return web.json_response({"object": "error", **error}, status=404)
        message = {"role": "assistant", "content": f"vLLM with {model}"}
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
            }
        )


def _rank(adapter: Path) -> int:
    return int(json.loads((adapter / "adapter_config.json").read_text())["r"])


@pytest.fixture
async def vllm() -> AsyncIterator[tuple[FakeVllm, str]]:
    fake = FakeVllm()
    app = web.Application()
    app.router.add_post("/v1/load_lora_adapter", fake.load)
    app.router.add_post("/v1/chat/completions", fake.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, tiny_base: Path, vllm: tuple[FakeVllm, str]
) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        bootstrap_key=None,
        finetune_models=f"tiny-llama={tiny_base}",
        finetune_vllm_url=vllm[1],
    )


async def test_the_adapter_is_loaded_on_vllm_and_served_from_it(
    api: Api, sdk: openai.AsyncOpenAI, vllm: tuple[FakeVllm, str]
) -> None:
    fake, _ = vllm
    upload = await sdk.files.create(file=("t.jsonl", chat_jsonl()), purpose="fine-tune")
    method = {"type": "lora", "lora": {"rank": 8, "hyperparameters": {"n_epochs": 1}}}
    job = await sdk.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=upload.id,
        suffix="v1",
        method=method,  # type: ignore[arg-type]
    )
    assert await FineTuneWorker(api.state.db, api.state.settings).run_once()
    job = await sdk.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    name = job.fine_tuned_model
    assert name is not None and list(fake.loaded) == [name]
    assert _rank(Path(fake.loaded[name])) == 8

    chat = await sdk.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == f"vLLM with {name}"
    assert fake.calls[-1]["model"] == name

    async with api.client(api.owner_key) as owner:
        _, b_key = await new_tenant(owner, "tenant-b")
    other = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=b_key, max_retries=0)
    try:
        for model in (name, f"finetuned-vllm/{name}"):
            with pytest.raises((openai.NotFoundError, openai.BadRequestError)):
                await other.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}]
                )
        assert name not in [m.id async for m in other.models.list()]
    finally:
        await other.close()
    assert len(fake.calls) == 1  # nothing of B's reached vLLM


@pytest.mark.parametrize("kind", ["finetuned", "vllm-lora"])
async def test_no_tenant_may_configure_the_server_s_own_kinds(
    api: Api, owner: Any, kind: str
) -> None:
    body = {"provider": kind, "options": {"adapters": {"x": {"adapter": "/etc", "base": "/etc"}}}}
    r = await owner.put("/v1/gateway/providers/mine", json=body)
    assert r.status_code == 422, r.text
    assert "is set up by the server itself" in r.text
