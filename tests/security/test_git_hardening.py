"""A repository's own git configuration runs nothing on the server (issue 14, finding 7).

The attacker controls a project's repository, ``.git/config`` included, and holds only a
viewer role. Before the fix, ``core.fsmonitor`` ran the attacker's program when the viewer
called ``/sdd/trace`` and when the project was indexed. Here the repository names a
program in every key git could run one from (fsmonitor, hooks, external diff, textconv,
clean/smudge/process filters, pager, ssh, askpass, gpg for ``log.showSignature``) and
points ``core.worktree`` at ``/``; the program would write a marker file. The server still
reads the repository with git (a force-added ignored file and the commit links prove it),
and the marker never appears.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from musubi.git import run_git
from tests.api.helpers import ok, user_with_role
from tests.conftest import Api
from tests.knowledge.conftest import settings

__all__ = ["settings"]

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

FIXTURE = Path(__file__).parents[1] / "sdd" / "fixtures" / "auth-project"
PROGRAM_KEYS = (
    "core.fsmonitor",
    "core.pager",
    "core.sshCommand",
    "core.askPass",
    "core.editor",
    "core.gitProxy",
    "diff.external",
    "diff.evil.textconv",
    "diff.evil.command",
    "filter.evil.clean",
    "filter.evil.smudge",
    "filter.evil.process",
    "gpg.program",
    "credential.helper",
)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Git runs the same whatever the database: SQLite only."""
    return str(request.param)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def hostile_repo(repo: Path, marker: Path) -> None:
    """A repository whose ``.git/config`` names ``evil.sh`` (which writes ``marker``) in
    every key that can make git run a program."""
    shutil.copytree(FIXTURE, repo)
    (repo / ".gitignore").write_text("forced.py\n")
    (repo / "forced.py").write_text("def forced_in():\n    return 'REQ-AUTH-001'\n")
    (repo / ".gitattributes").write_text("* diff=evil filter=evil\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "add", "-f", "forced.py")  # tracked although ignored: only git lists it
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "REQ-AUTH-002 login")
    evil = repo.parent / "evil.sh"
    evil.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    evil.chmod(0o755)
    hooks = repo / ".git" / "evil-hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "post-checkout", "reference-transaction"):
        shutil.copy(evil, hooks / hook)
    for key in PROGRAM_KEYS:
        _git(repo, "config", key, str(evil))
    _git(repo, "config", "core.hooksPath", str(hooks))
    _git(repo, "config", "filter.evil.required", "true")
    _git(repo, "config", "log.showSignature", "true")
    _git(repo, "config", "core.worktree", "/")
    for path in repo.rglob("*.py"):  # changed since the index: git would re-read (filter) them
        path.write_text(path.read_text() + "\n")


async def test_a_viewer_and_indexing_run_nothing_from_the_repositorys_config(
    api: Api, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-on-the-server"
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "hostile"
    repo.parent.mkdir(parents=True, exist_ok=True)
    hostile_repo(repo, marker)
    project = ok(await owner.post("/v1/projects", json={"name": "h", "repo_path": "hostile"}), 201)
    pid = project["id"]
    _, viewer_key = await user_with_role(owner, "v", "viewer", scope="project", scope_id=pid)
    async with api.client(viewer_key) as viewer:
        trace = ok(await viewer.get(f"/v1/projects/{pid}/sdd/trace"))
    assert not marker.exists(), marker.read_text()
    links = str(trace)
    assert "REQ-AUTH-002" in links and "commit" in links, trace  # git log was read
    assert "forced.py" in links, trace  # git ls-files was read (a walk skips ignored files)

    report = ok(await owner.post(f"/v1/projects/{pid}/knowledge/index"))
    assert report["files"] >= 1
    assert not marker.exists(), marker.read_text()
    hits = ok(
        await owner.post(f"/v1/projects/{pid}/knowledge/search", json={"query": "forced_in"})
    )["hits"]
    assert "forced.py" in {h["path"] for h in hits}  # listed by git, with the worktree pinned


def test_every_git_command_is_hardened_not_only_the_ones_used_today(tmp_path: Path) -> None:
    """Commands that diff or filter (log -p, diff, status, archive) run no program either."""
    marker = tmp_path / "ran"
    repo = tmp_path / "repo"
    hostile_repo(repo, marker)
    for args in (
        ("log", "-p", "--show-signature"),
        ("diff",),
        ("diff", "HEAD", "--stat"),
        ("status", "--porcelain"),
        ("show", "HEAD"),
        ("archive", "--format=tar", "HEAD"),
        ("ls-files", "-co", "--exclude-standard"),
    ):
        assert run_git(repo, *args) is not None, args
        assert not marker.exists(), (args, marker.read_text())
    diff = run_git(repo, "diff")
    assert diff is not None and b"forced_in" in diff  # a real diff, by git itself
    # the same command without the hardening runs the repository's program
    subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True, check=False)
    assert marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a repository to another user needs root")
def test_a_repository_owned_by_another_user_is_not_read_with_git(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """git's safe.directory check stays on: no override makes a foreign repository safe."""
    marker = tmp_path / "ran"
    repo = tmp_path / "repo"
    hostile_repo(repo, marker)
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 65534, 65534)
    assert run_git(repo, "ls-files") is None
    assert not marker.exists()
    assert "another user" in caplog.text
