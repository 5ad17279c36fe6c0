"""A run survives its server: killed with SIGKILL while a step waits on the model, the
server resumes the run when it starts again; the finished step is never called again and
the interrupted one is retried. A run with a live driver is never driven by a second one."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.orchestrator.runner import open_orchestrator
from musubi.sdd.project import load_project
from tests.api.helpers import ok
from tests.batch.test_restart import _serve, _tail
from tests.conftest import LOOPBACK_FAKES, Api
from tests.orchestrator.conftest import (
    ScriptedUpstream,
    good,
    read_events,
    stage_of,
    wire_project,
)
from tests.scaleout.cluster import free_port

pytestmark = pytest.mark.slow  # kills and restarts a server process


async def test_a_killed_server_resumes_the_run_without_calling_a_done_step_again(
    tmp_path: Path, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.gate = asyncio.Event()
    fake.gate.set()

    def script(messages: list[dict[str, Any]]) -> str:
        if stage_of(messages) == "requirements":
            fake.gate.clear()  # type: ignore[union-attr]  # hold the next call (design)
        return good(messages)

    fake.script = script
    key = f"msk_{secrets.token_hex(4)}_{secrets.token_hex(24)}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(tmp_path / "home"),
        "MUSUBI_BOOTSTRAP_KEY": key,
        "MUSUBI_PORT": str(port),
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_LOG_LEVEL": "warning",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
    }
    log = tmp_path / "server.log"
    proc = await _serve(env, log)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
            provider = {"provider": "openai", "api_key": "sk-x", "base_url": f"{url}/v1"}
            assert (await c.put("/v1/gateway/providers/openai", json=provider)).status_code == 200
            tenant = (await c.get("/v1/me")).json()["tenant_id"]
            repo = tmp_path / "home" / "repos" / tenant / "shop"
            repo.mkdir(parents=True)
            r = await c.post("/v1/projects", json={"name": "shop", "repo_path": "shop"})
            assert r.status_code == 201, r.text
            body = {"idea": "Export orders", "feature": "export", "auto_approve": True}
            r = await c.post(f"/v1/projects/{r.json()['id']}/runs", json=body)
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            async with asyncio.timeout(120):
                while fake.held == 0:  # noqa: ASYNC110 - the design call is held
                    await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fake.gate.set()
        proc = await _serve(env, log)  # the same home: the same SQLite database
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
            async with asyncio.timeout(180):
                while True:
                    run = (await c.get(f"/v1/runs/{run_id}")).json()
                    if run["status"] in ("succeeded", "failed"):
                        break
                    await asyncio.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    assert run["status"] == "succeeded", (run, _tail(log))
    answered = Counter(stage_of(m) for m in fake.chats)
    assert answered == {"requirements": 1, "design": 1, "tasks": 1}, answered
    assert len(fake.dropped) == 1  # the design call of the killed server, never answered
    assert [t.id for t in load_project(repo).tasks] == ["TASK-001", "TASK-002"]


async def test_a_second_process_does_not_drive_a_run_that_has_a_live_driver(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.gate = asyncio.Event()
    project_id = await wire_project(api, owner, url)
    body = {"idea": "Export orders", "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    async with asyncio.timeout(60):
        while fake.held == 0:  # noqa: ASYNC110 - the server's own driver waits on the model
            await asyncio.sleep(0.02)
    other = await open_orchestrator(api.state)  # another worker process on the same database
    try:
        other.submit(run["tenant_id"], run["id"])
        await other.wait(run["id"])  # it finds the lease held and leaves the run alone
        fake.gate.set()
        events = await read_events(owner, run["id"])
    finally:
        await other.close()
    assert events[-1]["type"] == "run.succeeded"
    assert fake.stages() == ["requirements", "design", "tasks"]
    assert other.calls == 0
