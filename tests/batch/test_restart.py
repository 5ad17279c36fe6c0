"""The database queue survives its process: a server killed with SIGKILL mid-batch
resumes the batch when it starts again (SQLite, the default install), losing no line and
sending no line that had succeeded again."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest

from tests.batch.conftest import chat_lines, until
from tests.batch.test_sdk_batch import wait_done
from tests.conftest import LOOPBACK_FAKES
from tests.gateway.fakes import FakeUpstream
from tests.scaleout.cluster import free_port

MUSUBI = str(Path(sys.executable).parent / "musubi")


pytestmark = pytest.mark.slow  # kills and restarts a server process


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([MUSUBI, "serve"], env=env, stdout=out, stderr=out)


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = _spawn(env, log)
    url = f"http://127.0.0.1:{env['MUSUBI_PORT']}/readyz"
    async with httpx.AsyncClient() as client, asyncio.timeout(30):
        while True:
            assert proc.poll() is None, _tail(log)
            try:
                if (await client.get(url)).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_a_killed_server_resumes_its_batches_on_restart(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    fake.latency = 0.02
    fake.gate = asyncio.Event()
    fake.gate.set()
    key = f"msk_{secrets.token_hex(4)}_{secrets.token_hex(24)}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(tmp_path / "home"),
        "MUSUBI_BOOTSTRAP_KEY": key,
        "MUSUBI_PORT": str(port),
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
        "MUSUBI_LOG_LEVEL": "warning",
    }
    log = tmp_path / "server.log"
    proc = await _serve(env, log)
    sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=2)
    try:
        provider = {"provider": "openai", "api_key": "sk-x", "base_url": f"{url}/v1"}
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as admin:
            r = await admin.put(
                f"http://127.0.0.1:{port}/v1/gateway/providers/openai", json=provider
            )
            assert r.status_code == 200, r.text
        uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(400)), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await until(lambda: len(fake.answered) >= 100, within=60)
        fake.gate.clear()
        await until(lambda: fake.held > 0)
        await asyncio.sleep(0.5)  # answers already delivered get stored
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fake.gate.set()
        proc = await _serve(env, log)  # the same data directory: the same SQLite database
        done = await wait_done(sdk, batch.id, within=90)
    finally:
        await sdk.close()
        proc.terminate()
        proc.wait(10)
    assert done.status == "completed", _tail(log)  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (400, 400, 0)
    answered = Counter(b["messages"][0]["content"] for b in fake.answered)
    assert len(answered) == 400 and max(answered.values()) == 1, "a line was answered twice"
