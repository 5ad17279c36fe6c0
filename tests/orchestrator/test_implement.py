"""implement and review: patches on their own branches, checked by git, reviewed against the
specs; tasks that do not depend on each other implemented in parallel within the limit."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.orchestrator.sandbox import Limits, run_tests
from tests.api.helpers import ok
from tests.conftest import Api
from tests.orchestrator.conftest import (
    DESIGN,
    REQUIREMENTS,
    ScriptedUpstream,
    read_events,
    wire_project,
)

ORDERS = '''"""Orders of the shop."""


def list_orders(store):
    """Every order of the store, oldest first."""
    return sorted(store.orders, key=lambda o: o.created)
'''

TASKS = """# export tasks

### TASK-001: CSV writer

**Requirements**: REQ-EXPORT-001
**Depends on**: None

### TASK-002: Empty export answer

**Requirements**: REQ-EXPORT-002
**Depends on**: None

### TASK-003: CSV header row

**Requirements**: REQ-EXPORT-001
**Depends on**: None

### TASK-004: Export audit line

**Requirements**: REQ-EXPORT-001
**Depends on**: None

### TASK-006: CSV quoting

**Requirements**: REQ-EXPORT-001
**Depends on**: None

### TASK-007: CSV encoding

**Requirements**: REQ-EXPORT-001
**Depends on**: None

### TASK-005: CSV streaming

**Requirements**: REQ-EXPORT-001
**Depends on**: TASK-001
"""


CHECK = """import pathlib, sys

done = pathlib.Path("src/shop/task_001.py")
sys.exit(0 if done.is_file() and "GOOD" in done.read_text() else 3)
"""


def git(root: Path, *args: str) -> str:
    ident = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgSign=false"]
    done = subprocess.run(
        ["git", *ident, "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def make_repo(root: Path, tests: str | None = None) -> str:
    """A committed repository with the export specs, five tasks and some code; HEAD."""
    files = {
        "storage/specs/export-requirements.md": REQUIREMENTS.split("```markdown\n", 1)[1].rsplit(
            "```", 1
        )[0],
        "storage/design/export-design.md": DESIGN,
        "storage/tasks/export-tasks.md": TASKS,
        "src/shop/__init__.py": "",
        "src/shop/orders.py": ORDERS,
        "steering/rules/constitution.md": "# Constitution\n\n## Article I: Tests first\n",
    }
    if tests is not None:
        files["steering/project.yml"] = f"test_command: {tests}\n"
        files["check_task.py"] = CHECK
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return git(root, "rev-parse", "HEAD").strip()


def new_file_patch(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def task_of(messages: list[dict[str, Any]]) -> str | None:
    if "implementing one task" not in str(messages[1]["content"]):
        return None
    m = re.search(r"### (TASK-\d+)", str(messages[1]["content"]))
    assert m is not None
    return m[1]


def patch_for(task: str) -> str:
    name = task.lower().replace("-", "_")
    return (
        "Here is the patch.\n\n```diff\n"
        + new_file_patch(f"src/shop/{name}.py", [f'"""{task}."""', "", f"DONE = {task!r}"])
        + "```\n"
    )


def implementer(messages: list[dict[str, Any]]) -> str:
    task = task_of(messages)
    assert task is not None, messages[1]["content"][:200]
    return patch_for(task)


def _repo(api: Api, tenant: str, name: str = "shop") -> Path:
    return api.state.settings.effective_repos_root / tenant / name


async def _project(api: Api, owner: httpx.AsyncClient, url: str) -> tuple[str, Path, str]:
    project_id = await wire_project(api, owner, url)
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    root = _repo(api, tenant)
    head = make_repo(root)
    return project_id, root, head


async def _finished(owner: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    events = await read_events(owner, run_id, within=600)
    assert events[-1]["type"] in ("run.succeeded", "run.failed"), events
    return dict(ok(await owner.get(f"/v1/runs/{run_id}")))


async def test_implement_commits_a_patch_on_its_own_branch_and_leaves_the_tree_alone(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.script = implementer
    project_id, root, head = await _project(api, owner, url)
    body = {"idea": "TASK-001", "steps": ["implement"]}
    est = ok(await owner.post(f"/v1/projects/{project_id}/runs/estimate", json=body))
    assert [s["step"] for s in est["steps"]] == ["implement:TASK-001"]
    assert est["steps"][0]["input_tokens"] > 100 and est["steps"][0]["model"] == "gpt-4.1"
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    shown = await _finished(owner, run["id"])
    assert shown["status"] == "succeeded", shown
    step = shown["steps"][0]
    branch = f"musubi/{run['id']}/TASK-001"
    assert step["name"] == "implement:TASK-001" and step["output_path"] == branch
    # the prompt: the task, the EARS statement it cites, the ADR, and code from the engine
    prompt = fake.chats[0][1]["content"]
    assert "### TASK-001: CSV writer" in prompt
    assert "SHALL return a CSV file" in prompt and "ADR-001" in prompt
    assert "def list_orders" in prompt  # packed by the knowledge engine
    # the branch has the commit; the user's tree, index and branch are untouched
    assert git(root, "show", f"{branch}:src/shop/task_001.py").startswith('"""TASK-001."""')
    assert git(root, "log", "-1", "--format=%s%n%b", branch).startswith("TASK-001: CSV writer")
    assert git(root, "rev-parse", f"{branch}~1").strip() == head
    assert git(root, "rev-parse", "HEAD").strip() == head
    assert git(root, "branch", "--show-current").strip() == "main"
    assert git(root, "status", "--porcelain") == ""
    assert not (root / "src/shop/task_001.py").exists()
    assert git(root, "worktree", "list").count("\n") == 1  # its worktree is gone
    assert step["estimate_error"]["input_tokens"] is not None


async def test_a_patch_that_does_not_apply_is_repaired_with_gits_message(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    wrong = (
        "```diff\ndiff --git a/src/shop/orders.py b/src/shop/orders.py\n"
        "--- a/src/shop/orders.py\n+++ b/src/shop/orders.py\n@@ -1,2 +1,2 @@\n"
        '-"""Invoices of the shop."""\n+"""Orders and exports of the shop."""\n \n```\n'
    )
    answers = iter([wrong, "I would rather explain the change in words."])
    fake.script = lambda m: next(answers, None) or implementer(m)
    project_id, root, _ = await _project(api, owner, url)
    body = {"idea": "TASK-002", "steps": ["implement"]}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    shown = await _finished(owner, run["id"])
    assert shown["status"] == "succeeded", shown
    assert shown["steps"][0]["attempts"] == 3
    first_repair = fake.chats[1][-1]["content"]
    assert "the patch does not apply" in first_repair and "src/shop/orders.py" in first_repair
    assert "no unified diff found" in fake.chats[2][-1]["content"]
    assert "task_002.py" in git(
        root, "ls-tree", "-r", "--name-only", f"musubi/{run['id']}/TASK-002"
    )


async def test_a_patch_that_never_applies_fails_and_leaves_no_branch(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.script = lambda m: new_file_patch("src/shop/orders.py", ["clash"])  # exists already
    project_id, root, _ = await _project(api, owner, url)
    run = ok(
        await owner.post(
            f"/v1/projects/{project_id}/runs", json={"idea": "TASK-001", "steps": ["implement"]}
        ),
        201,
    )
    shown = await _finished(owner, run["id"])
    assert shown["status"] == "failed" and "no valid patch after 3 attempts" in shown["error"]
    assert "already exists" in shown["error"]
    assert shown["steps"][0]["raw"]  # the last answer is kept
    assert "musubi/" not in git(root, "branch", "--list")


async def test_implement_refuses_a_non_git_repository_a_dirty_tree_and_unknown_tasks(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    runs = f"/v1/projects/{project_id}/runs"
    body = {"idea": "TASK-001", "steps": ["implement"]}
    r = await owner.post(runs, json=body)
    assert r.status_code == 409 and "is not a git repository" in r.json()["error"]["message"]
    root = _repo(api, ok(await owner.get("/v1/me"))["tenant_id"])
    make_repo(root)
    (root / "src/shop/orders.py").write_text(ORDERS + "# mine\n")
    (root / "notes.txt").write_text("draft")
    r = await owner.post(runs, json=body)
    msg = r.json()["error"]["message"]
    assert r.status_code == 409 and "not clean" in msg and "src/shop/orders.py" in msg, msg
    assert "notes.txt" in msg
    git(root, "checkout", "--", "src/shop/orders.py")
    (root / "notes.txt").unlink()
    r = await owner.post(runs, json={"idea": "TASK-001 TASK-404", "steps": ["implement"]})
    assert r.status_code == 422 and "TASK-404 is no task" in r.json()["error"]["message"]
    r = await owner.post(runs, json={"idea": "no-such-branch", "steps": ["review"]})
    assert r.status_code == 422 and "is no branch" in r.json()["error"]["message"]
    assert fake.chats == []  # nothing was asked of a model


async def test_independent_tasks_run_in_parallel_never_above_the_limit(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.script = implementer
    orch = api.state.orchestrator
    assert orch is not None
    project_id, root, head = await _project(api, owner, url)
    runs = f"/v1/projects/{project_id}/runs"
    orch.parallel = 1
    body = {"idea": "TASK-002 TASK-003", "steps": ["implement"], "feature": "one"}
    run = ok(await owner.post(runs, json=body), 201)
    assert (await _finished(owner, run["id"]))["status"] == "succeeded"
    assert fake.max_inflight == 1 and len(fake.chats) == 2
    fake.max_inflight, fake.chats = 0, []
    orch.parallel = 2
    fake.gate = asyncio.Event()  # every call is held until the gate opens
    body = {"idea": "TASK-001 TASK-004 TASK-005 TASK-006 TASK-007", "steps": ["implement"]}
    run = ok(await owner.post(runs, json=body), 201)
    async with asyncio.timeout(300):
        while fake.held < 2:  # noqa: ASYNC110 - two calls at once: in parallel
            await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # four tasks are ready; no third call may come meanwhile
    assert fake.held == 2 and fake.max_inflight == 2
    fake.gate.set()
    shown = await _finished(owner, run["id"])
    assert shown["status"] == "succeeded", shown
    assert fake.max_inflight == 2  # never more than the limit, the whole run long
    order = [str(task_of(m)) for m in fake.chats]
    assert sorted(order) == ["TASK-001", "TASK-004", "TASK-005", "TASK-006", "TASK-007"]
    assert order[-1] == "TASK-005"  # it depends on TASK-001: started after the first wave
    # TASK-005's branch is stacked on TASK-001's; the others start from HEAD
    mine = f"musubi/{run['id']}"
    one = git(root, "rev-parse", f"{mine}/TASK-001").strip()
    assert git(root, "rev-parse", f"{mine}/TASK-005~1").strip() == one
    assert git(root, "rev-parse", f"{mine}/TASK-004~1").strip() == head


async def test_review_cites_existing_lines_and_ids_or_is_repaired(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root, _ = await _project(api, owner, url)
    git(root, "checkout", "-q", "-b", "feature/csv")
    (root / "src/shop/csv.py").write_text('"""CSV export (TASK-001)."""\n\nSEP = ","\n')
    git(root, "add", "-A")
    git(root, "commit", "-qm", "TASK-001: CSV writer")
    git(root, "checkout", "-q", "main")
    bad = (
        "# Review: feature/csv\n\n**Verdict**: request-changes\n\n## Findings\n\n"
        "- **error** `src/shop/missing.py:3` REQ-EXPORT-001: no such file\n"
        "- **warning** `src/shop/csv.py:40` REQ-NOPE-009: beyond the end\n"
        "- the export is nice\n"
    )
    good = (
        "# Review: feature/csv\n\n**Verdict**: request-changes\n\n## Findings\n\n"
        "- **error** `src/shop/csv.py:3` REQ-EXPORT-001 TASK-001: the separator is fixed; "
        "no orders are written yet\n"
    )
    answers = iter([bad, good])
    fake.script = lambda m: next(answers)
    body = {"idea": "feature/csv", "steps": ["review"]}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    shown = await _finished(owner, run["id"])
    assert shown["status"] == "succeeded", shown
    prompt = fake.chats[0][1]["content"]
    assert '+SEP = ","' in prompt and "Article I: Tests first" in prompt
    assert "REQ-EXPORT-001" in prompt
    repair = fake.chats[1][-1]["content"]
    assert "src/shop/missing.py is no file of the branch" in repair
    assert "src/shop/csv.py:40: the file has 3 lines" in repair
    assert "REQ-NOPE-009 is no ID of the project" in repair
    assert "'the export is nice': cites no ID" in repair
    written = root / shown["steps"][0]["output_path"]
    assert "csv.py:3" in written.read_text()


async def test_tests_run_only_where_allowed(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    """sandbox without bubblewrap and local on the server are refused before any call;
    local mode (the CLI on the developer's machine) runs the tests and a failing patch is
    sent back with their output."""
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    root = _repo(api, ok(await owner.get("/v1/me"))["tenant_id"])
    make_repo(root, tests="python3 check_task.py")
    orch = api.state.orchestrator
    assert orch is not None
    runs = f"/v1/projects/{project_id}/runs"
    body = {"idea": "TASK-001", "steps": ["implement"]}
    orch.tests = "local"
    shown = await _finished(owner, ok(await owner.post(runs, json=body), 201)["id"])
    assert shown["status"] == "failed" and "the server refuses it" in shown["error"]
    if not _has_bwrap():
        orch.tests = "sandbox"
        shown = await _finished(owner, ok(await owner.post(runs, json=body), 201)["id"])
        assert shown["status"] == "failed" and "bubblewrap is not installed" in shown["error"]
    assert fake.chats == []
    orch.tests, orch.local = "local", True  # what `musubi run implement --local` builds
    answers = iter(["```diff\n" + new_file_patch("src/shop/task_001.py", ["BAD"]) + "```"])
    fake.script = lambda m: next(
        answers, "```diff\n" + new_file_patch("src/shop/task_001.py", ["GOOD = 1"]) + "```"
    )
    try:
        shown = await _finished(owner, ok(await owner.post(runs, json=body), 201)["id"])
    finally:
        orch.tests, orch.local = "off", False
    assert shown["status"] == "succeeded", shown
    assert "the tests fail with the patch (exit 3)" in fake.chats[1][-1]["content"]
    assert git(root, "status", "--porcelain") == ""
    if _has_bwrap():  # the server's own mode: the same loop, the tests inside bubblewrap
        orch.tests = "sandbox"  # (the gateway's cache answers the same two prompts again)
        try:
            shown = await _finished(owner, ok(await owner.post(runs, json=body), 201)["id"])
        finally:
            orch.tests = "off"
        assert shown["status"] == "succeeded", shown
        assert shown["steps"][0]["attempts"] == 2  # BAD failed the sandboxed tests, GOOD passed


def _has_bwrap() -> bool:
    import shutil

    return shutil.which("bwrap") is not None


def test_local_tests_get_a_clean_environment_and_a_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSUBI_DATABASE_URL", "postgresql://secret@db/prod")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    env = run_tests(tmp_path, "env", "local")
    assert env.ok and "sk-secret" not in env.output and "MUSUBI" not in env.output
    assert "HOME=/tmp" in env.output
    slow = run_tests(tmp_path, "sleep 30", "local", Limits(wall_s=0.5))
    assert not slow.ok and slow.timed_out and "killed after 0.5 s" in slow.output
    with pytest.raises(ValueError, match="tests are off"):
        run_tests(tmp_path, "true", "off")


PROBE = """\
import os, socket, sys
print("uid", os.getuid())
open("written", "w").write("ok")
print("host file", os.path.exists(sys.argv[1]))
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), 2)
    print("network yes")
except OSError:
    print("network no")
print("secret in env", "sk-secret" in str(os.environ))
try:
    open("/usr/escape", "w")
    print("usr writable")
except OSError:
    print("usr read-only")
"""


@pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.environ.get("MUSUBI_REQUIRE_SANDBOX"),
    reason="bubblewrap is not installed (CI installs it and sets MUSUBI_REQUIRE_SANDBOX=1)",
)
def test_sandbox_sees_only_the_worktree_has_no_network_and_is_not_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `MUSUBI_ORCHESTRATOR_TESTS=sandbox` promises, tried from inside: another user,
    only the worktree writable and nothing of the host's files, no network (not even a
    service listening on the host's loopback), a clean environment, the wall-clock limit."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    secret = tmp_path / "home" / "musubi.db"
    secret.parent.mkdir()
    secret.write_text("tenant data")
    work = tmp_path / "work"
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        run = run_tests(work, f"python3 probe.py {secret} {port}", "sandbox")
    assert run.ok, run.output
    for line in ("uid 65534", "host file False", "network no", "secret in env False"):
        assert line in run.output, run.output
    assert "usr read-only" in run.output
    assert (work / "written").read_text() == "ok"  # the worktree is the writable place
    slow = run_tests(work, "sleep 30", "sandbox", Limits(wall_s=0.5))
    assert not slow.ok and slow.timed_out


async def test_parallel_waves_overlap_in_time(tmp_path: Path) -> None:
    """A guard that the fake's latency really lets calls overlap (the limit test relies on
    it): two sleeps of 0.2 s under a limit of 2 take well under 0.4 s."""
    gate = asyncio.Semaphore(2)

    async def one() -> None:
        async with gate:
            await asyncio.sleep(0.2)

    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(one(), one())
    assert loop.time() - start < 0.35
