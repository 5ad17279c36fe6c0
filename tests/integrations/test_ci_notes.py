"""``musubi ci report``, the real CLI in a subprocess: the gate table as a GitLab
merge-request note (posted once, then edited on each run) beside the commit status, and
as an Azure DevOps pull request status; the fakes check every request's shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from musubi.integrations.checks import NOTE_MARKER, gate_result
from tests.integrations.ci_fakes import FakeAzureRepos, FakeGitLabCI
from tests.integrations.specs import write_project
from tests.integrations.test_ci import _report


@pytest.fixture
def gitlab_ci() -> Iterator[FakeGitLabCI]:
    with FakeGitLabCI().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def azure_repos() -> Iterator[FakeAzureRepos]:
    with FakeAzureRepos().serve() as fake:
        yield fake  # type: ignore[misc]


def test_the_gates_are_one_note_on_the_merge_request(
    gitlab_ci: FakeGitLabCI, tmp_path: Path
) -> None:
    write_project(tmp_path)
    expected = gate_result(tmp_path, None, ("design",))
    args = ["gitlab", "--path", str(tmp_path), "--repo", gitlab_ci.project, "--sha", "d" * 40]
    args += ["--base-url", gitlab_ci.url, "--mr", "7", "--trace", "design"]
    first = _report(*args, token=gitlab_ci.token)
    assert first.returncode == 1, first.stderr  # the trace gaps fail the gates
    assert "note 501 on !7" in first.stdout
    [note] = gitlab_ci.notes[7]
    assert note["body"].startswith(NOTE_MARKER) and "❌" in note["body"]
    assert (
        expected.title in note["body"] and "| trace | design | critical | block |" in note["body"]
    )
    [status] = gitlab_ci.statuses
    assert status["state"] == "failed" and status["sha"] == "d" * 40
    # a person's note stays; the next run edits MUSUBI's note, adds none
    gitlab_ci.notes[7].insert(0, {"id": 900, "body": "LGTM", "system": False})
    again = _report(*args[:-2], token=gitlab_ci.token)  # without --trace: the gates pass
    assert again.returncode == (0 if gate_result(tmp_path).passed else 1), again.stderr
    assert [n["id"] for n in gitlab_ci.notes[7]] == [900, 501]
    assert gate_result(tmp_path).title in gitlab_ci.notes[7][1]["body"]
    assert len(gitlab_ci.statuses) == 2
    assert gitlab_ci.violations == []
    missing = _report(*args[:-4], "--mr", "8", token=gitlab_ci.token)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_mr_is_gitlabs_only(tmp_path: Path) -> None:
    write_project(tmp_path)
    done = _report(
        "github",
        "--path",
        str(tmp_path),
        "--repo",
        "a/b",
        "--sha",
        "e" * 40,
        "--mr",
        "1",
        token="t",
    )
    assert done.returncode == 2 and "--mr is GitLab's" in done.stderr


def test_the_gates_as_an_azure_devops_pull_request_status(
    azure_repos: FakeAzureRepos, tmp_path: Path
) -> None:
    write_project(tmp_path)
    expected = gate_result(tmp_path)
    args = ["azure_devops", "--path", str(tmp_path), "--repo", azure_repos.repository]
    args += ["--project", azure_repos.project, "--base-url", f"{azure_repos.url}/{azure_repos.org}"]
    done = _report(*args, "--pr", "42", token=azure_repos.token)
    assert done.returncode == (0 if expected.passed else 1), done.stderr
    [status] = azure_repos.statuses
    assert status["pullRequest"] == 42
    assert status["state"] == ("succeeded" if expected.passed else "failed")
    assert status["context"] == {"name": "gates", "genre": "musubi"}
    assert status["description"] == expected.title
    failing = _report(*args, "--pr", "42", "--trace", "design", token=azure_repos.token)
    assert failing.returncode == 1 and azure_repos.statuses[1]["state"] == "failed"
    unknown = _report(*args, "--pr", "43", token=azure_repos.token)
    assert unknown.returncode == 1 and "404" in unknown.stderr
    refused = _report(*args, "--pr", "42", token="wrong-pat")
    assert refused.returncode == 1 and "token was refused" in refused.stderr
    assert azure_repos.violations == []
