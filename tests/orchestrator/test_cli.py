"""``musubi plan`` and ``musubi runs`` against a running server, as a user would run them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx

from tests.conftest import Api
from tests.orchestrator.conftest import BAD_REQUIREMENTS, ScriptedUpstream, wire_project

MUSUBI = str(Path(sys.executable).parent / "musubi")


async def musubi(api: Api, *args: str, code: int = 0) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        MUSUBI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "MUSUBI_URL": api.base_url, "MUSUBI_API_KEY": api.owner_key},
    )
    out, err = await proc.communicate()
    assert proc.returncode == code, f"musubi {' '.join(args)}: {err.decode()}"
    return out.decode(), err.decode()


async def test_plan_estimates_runs_and_reports(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    args = ("plan", "Export orders as CSV", "--project", project_id, "--feature", "export")
    out, err = await musubi(api, *args, "--budget", "0.0000001", code=1)
    assert "exceeds the budget" in err and fake.calls == 0
    out, err = await musubi(api, *args, "--auto-approve", "--json")
    assert "estimate:" in err and "requirements: wrote storage/specs/export-requirements.md" in err
    run = json.loads(out)
    assert run["status"] == "succeeded" and [s["status"] for s in run["steps"]] == ["done"] * 3
    listed, _ = await musubi(api, "runs", "list", "--project", project_id, "--json")
    assert [r["id"] for r in json.loads(listed)] == [run["id"]]


async def test_plan_without_a_terminal_stops_at_the_gate_and_runs_approve_goes_on(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    out, err = await musubi(api, "plan", "Export orders", "--project", project_id, "--json")
    run = json.loads(out)
    assert run["status"] == "awaiting_approval"
    assert f"musubi runs approve {run['id']}" in err
    _, err = await musubi(api, "runs", "approve", run["id"], "--follow")
    assert "design: wrote" in err
    shown, _ = await musubi(api, "runs", "show", run["id"], "--json")
    assert [s["status"] for s in json.loads(shown)["steps"]] == ["done", "done", "pending"]
    assert fake.stages() == ["requirements", "design"]
    out, _ = await musubi(api, "runs", "cancel", run["id"])
    assert "cancelled" in out


async def test_a_failed_plan_exits_non_zero_with_the_validators_messages(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.script = lambda messages: BAD_REQUIREMENTS
    project_id = await wire_project(api, owner, url)
    _, err = await musubi(api, "plan", "Export", "--project", project_id, code=1)
    assert "requirements: failed:" in err and "no EARS statement" in err


async def test_implement_local_runs_the_tests_here_and_runs_show_compares_the_estimate(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    """``musubi run implement --local --tests`` on the developer's machine: the run is driven
    by the CLI process, the project's tests judge each patch; the server's setting is off."""
    from tests.conftest import LOOPBACK_FAKES
    from tests.orchestrator.test_implement import git, make_repo, new_file_patch

    fake, url = scripted
    answers = iter(["```diff\n" + new_file_patch("src/shop/task_001.py", ["BAD"]) + "```"])
    fake.script = lambda m: next(
        answers, "```diff\n" + new_file_patch("src/shop/task_001.py", ["GOOD = 1"]) + "```"
    )
    project_id = await wire_project(api, owner, url)
    tenant = (await owner.get("/v1/me")).json()["tenant_id"]
    root = api.state.settings.effective_repos_root / tenant / "shop"
    make_repo(root, tests="python3 check_task.py")
    settings = api.state.settings
    env = {
        **os.environ,
        "MUSUBI_API_KEY": api.owner_key,
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }
    args = ("run", "implement", "TASK-001", "--project", project_id, "--local", "--json")
    proc = await asyncio.create_subprocess_exec(
        MUSUBI, *args, "--tests", stdout=-1, stderr=-1, stdin=-3, env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    run = json.loads(out)
    assert run["status"] == "succeeded" and run["steps"][0]["attempts"] == 2
    assert "implement:TASK-001: attempt 1 invalid" in err.decode()
    assert "the tests fail with the patch (exit 3)" in fake.chats[1][-1]["content"]
    branch = run["steps"][0]["output_path"]
    assert "GOOD = 1" in git(root, "show", f"{branch}:src/shop/task_001.py")
    shown, _ = await musubi(api, "runs", "show", run["id"])
    assert "estimate against actual" in shown
    line = next(x for x in shown.splitlines() if "implement:TASK-001" in x)
    assert "succeeded" in shown and "done, 2 answers" in line and "output 2000/50 (+3900%)" in line
    assert branch in line
