"""``musubi ci report``: the review gates of a project posted as a GitHub check run (the
request validated against GitHub's description) and a GitLab commit status, by the real
CLI in a subprocess; the exit code follows the gates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from musubi.integrations.checks import gate_result
from tests.integrations.fakes import FakeGitHub
from tests.integrations.specs import write_project

ROOT = Path(__file__).resolve().parents[2]


def _report(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env["MUSUBI_CI_TOKEN"] = token
    code = "from musubi.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "ci", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("vendor", ["github", "gitlab"])
def test_gates_posted_as_a_check(
    vendor: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake = request.getfixturevalue(vendor)
    root = tmp_path / "repo"
    write_project(root)
    expected = gate_result(root)
    repo = fake.repository if vendor == "github" else fake.project
    done = _report(
        vendor,
        "--path",
        str(root),
        "--repo",
        repo,
        "--sha",
        "a" * 40,
        "--base-url",
        fake.url,
        token=fake.token,
    )
    assert done.returncode == (0 if expected.passed else 1), done.stderr
    assert expected.title in done.stdout
    if vendor == "github":
        [check] = fake.checks
        assert check["head_sha"] == "a" * 40 and check["status"] == "completed"
        assert check["conclusion"] == ("success" if expected.passed else "failure")
        assert "| gate | check |" in check["output"]["summary"]
    else:
        [status] = fake.statuses
        assert status["sha"] == "a" * 40
        assert status["state"] == ("success" if expected.passed else "failed")
    assert fake.violations == []


def test_a_refused_token_is_a_clear_error(github: FakeGitHub, tmp_path: Path) -> None:
    write_project(tmp_path)
    done = _report(
        "github",
        "--path",
        str(tmp_path),
        "--repo",
        github.repository,
        "--sha",
        "b" * 40,
        "--base-url",
        github.url,
        token="wrong",
    )
    assert done.returncode == 1 and "token was refused" in done.stderr


def test_the_pipeline_templates_run_the_gates() -> None:
    """The drop-in templates parse and call ``musubi ci report`` for their platform."""
    templates = ROOT / "deploy" / "ci-templates"
    expected = {
        "github/action.yml": "musubi ci report github",
        "gitlab/templates/musubi-gates.yml": "musubi ci report gitlab",
        "azure-pipelines/musubi-gates.yml": "musubi ci report azure_devops",
    }
    for name, command in expected.items():
        text = (templates / name).read_text()
        documents = list(yaml.safe_load_all(text))
        assert documents and all(d is not None for d in documents), name
        assert command in text and "musubi validate" in text, name


def test_trace_gaps_fail_the_check(github: FakeGitHub, tmp_path: Path) -> None:
    """``--trace design``: requirements without a design are gaps, and the check fails."""
    write_project(tmp_path)
    expected = gate_result(tmp_path, None, ("design",))
    assert not expected.passed and "trace gap" in expected.title
    done = _report(
        "github",
        "--path",
        str(tmp_path),
        "--repo",
        github.repository,
        "--sha",
        "c" * 40,
        "--base-url",
        github.url,
        "--trace",
        "design",
        token=github.token,
    )
    assert done.returncode == 1, done.stderr
    [check] = github.checks
    assert check["conclusion"] == "failure"
    assert "| trace | design | critical | block |" in check["output"]["summary"]
    assert "REQ-AUTH-001" in check["output"]["summary"]
    assert github.violations == []
