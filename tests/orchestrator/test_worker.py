"""Runs driven by ``musubi worker`` (MUSUBI_ORCHESTRATOR_RUNS_IN=worker): the API process
only queues them; a worker killed with SIGKILL mid-step is replaced by another, which never
calls a finished step again and retries the interrupted one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.orchestrator.runner import SWEEP_S
from musubi.sdd.project import load_project
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import LOOPBACK_FAKES, Api
from tests.orchestrator.conftest import ScriptedUpstream, good, stage_of, wire_project

MUSUBI = str(Path(sys.executable).parent / "musubi")


pytestmark = pytest.mark.slow  # kills and restarts worker processes


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.orchestrator_runs_in = "worker"  # the API process drives no run
    return settings


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_ORCHESTRATOR_RUNS_IN": "worker",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
        "MUSUBI_LOG_LEVEL": "warning",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [MUSUBI, "worker"], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )


async def _status(owner: httpx.AsyncClient, run_id: str, want: tuple[str, ...]) -> dict[str, Any]:
    async with asyncio.timeout(300):
        while True:
            run = dict(ok(await owner.get(f"/v1/runs/{run_id}")))
            if run["status"] in want:
                return run
            await asyncio.sleep(0.1)


async def test_a_killed_worker_is_replaced_and_no_finished_step_is_called_again(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str], tmp_path: Path
) -> None:
    fake, url = scripted
    fake.gate = asyncio.Event()
    fake.gate.set()

    def script(messages: list[dict[str, Any]]) -> str:
        if stage_of(messages) == "requirements":
            fake.gate.clear()  # type: ignore[union-attr]  # hold the next call (design)
        return good(messages)

    fake.script = script
    project_id = await wire_project(api, owner, url)
    body = {"idea": "Export orders", "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    await asyncio.sleep(1.0)
    assert ok(await owner.get(f"/v1/runs/{run['id']}"))["status"] == "queued"  # nobody drives
    assert fake.chats == []
    log = tmp_path / "worker.log"
    first = _worker(api.state.settings, log)
    try:
        async with asyncio.timeout(300):
            while fake.held == 0:  # noqa: ASYNC110 - the design call is held
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        fake.gate.set()
        second = _worker(api.state.settings, log)
        try:
            shown = await _status(owner, run["id"], ("succeeded", "failed"))
        finally:
            second.terminate()
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
    assert shown["status"] == "succeeded", (shown, log.read_text()[-3000:])
    answered = Counter(stage_of(m) for m in fake.chats)
    assert answered == {"requirements": 1, "design": 1, "tasks": 1}, answered
    assert len(fake.dropped) == 1  # the design call of the killed worker, never answered
    assert [s["attempts"] for s in shown["steps"]] == [1, 1, 1]
    assert api.state.orchestrator is not None and api.state.orchestrator.calls == 0
    repo = api.state.settings.effective_repos_root / shown["tenant_id"] / "shop"
    assert [t.id for t in load_project(repo).tasks] == ["TASK-001", "TASK-002"]


async def test_a_cancel_through_the_api_stops_the_workers_step(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str], tmp_path: Path
) -> None:
    fake, url = scripted
    fake.gate = asyncio.Event()  # every call held
    project_id = await wire_project(api, owner, url)
    body = {"idea": "Export orders", "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    worker = _worker(api.state.settings, tmp_path / "worker.log")
    try:
        async with asyncio.timeout(300):
            while fake.held == 0:  # noqa: ASYNC110 - the requirements call is held
                await asyncio.sleep(0.05)
        ok(await owner.post(f"/v1/runs/{run['id']}/cancel"))
        await asyncio.sleep(4 * SWEEP_S)  # the worker sees it at its next lease renewal
        fake.gate.set()
        async with asyncio.timeout(10):
            while not fake.dropped:  # noqa: ASYNC110 - the worker had hung up
                await asyncio.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(15)
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert shown["status"] == "cancelled" and fake.answered == []
    repo = api.state.settings.effective_repos_root / shown["tenant_id"] / "shop"
    assert not (repo / "storage/specs/export-requirements.md").exists()
