"""Traceability: links with evidence, gaps, coverage, impact, and `musubi trace check` in CI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from musubi.sdd.project import load_project
from musubi.sdd.trace.matrix import build_matrix, collect_links, find_gaps, impact
from musubi.sdd.trace.scan import scan_file

Cli = Callable[..., tuple[int, str, str]]


def _add_links_for_req_004(root: Path) -> None:
    design = root / "storage/design/auth-design.md"
    design.write_text(design.read_text() + "\n### 3.3 TokenRefresher\n\nImplements REQ-AUTH-004.\n")
    (root / "src/auth/refresh.py").write_text(
        "def refresh(token: str) -> str:  # REQ-AUTH-004\n    return token\n"
    )
    (root / "tests/test_refresh.py").write_text(
        "def test_req_auth_004_refresh_rotates():\n    assert True\n"
    )


def test_trace_check_fails_on_a_gap_and_passes_once_linked(project_root: Path, musubi: Cli) -> None:
    code, out, err = musubi("trace", "check", "--no-commits", "-C", str(project_root))
    assert code == 1
    assert (
        "storage/specs/auth-requirements.md:73: gap: REQ-AUTH-004 has no design, code, tests link"
        in out
    )
    assert "FAIL: 4 requirement(s), 75.0% traced (design, code, tests), 1 gap(s)" in err
    _add_links_for_req_004(project_root)
    code, out, _ = musubi("trace", "check", "--no-commits", "-C", str(project_root))
    assert code == 0, out
    assert "OK: 4 requirement(s), 100.0% traced (design, code, tests), 0 gap(s)" in out


def test_trace_check_flags_references_to_unknown_requirements(
    project_root: Path, musubi: Cli
) -> None:
    _add_links_for_req_004(project_root)
    (project_root / "src/auth/typo.py").write_text("# implements REQ-AUTH-044\n")
    code, out, _ = musubi("trace", "check", "--no-commits", "-C", str(project_root))
    assert code == 1
    assert "src/auth/typo.py:1: gap: src/auth/typo.py:1 refers to REQ-AUTH-044" in out


def test_links_carry_file_line_and_how_they_were_written() -> None:
    code = (
        "import pytest\n\n"
        "@pytest.mark.requirement('REQ-AUTH-002')\n"
        "def test_hash():\n    pass\n\n"
        "def test_req_auth_login_001_works():\n    pass\n"
        "x = 1  # see REQ-AUTH-003\n"
    )
    links = [(x.id, x.kind, x.line, x.via) for x in scan_file(code, "tests/test_auth.py")]
    assert links == [
        ("REQ-AUTH-002", "test", 3, "marker"),
        ("REQ-AUTH-LOGIN-001", "test", 7, "test-name"),
        ("REQ-AUTH-003", "test", 9, "comment"),
    ]
    assert scan_file("// REQ-AUTH-002\n", "src/hash.ts")[0].kind == "code"


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_commit_messages_are_links_with_their_sha(project_root: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(project_root), *args], check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    git(
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "-m",
        "feat(auth): session refresh [REQ-AUTH-004]",
    )
    sha = git("rev-parse", "HEAD").strip()
    project = load_project(project_root)
    matrix = build_matrix(project, collect_links(project))
    commits = matrix.entries["REQ-AUTH-004"].commits
    assert [(c.sha, c.text) for c in commits] == [
        (sha, "feat(auth): session refresh [REQ-AUTH-004]")
    ]
    assert [g.missing for g in find_gaps(matrix)] == [["design", "code", "tests"]]


def test_matrix_yaml_is_written_only_when_it_changes(project_root: Path, musubi: Cli) -> None:
    code, _, err = musubi("trace", "matrix", "--write", "--no-commits", "-C", str(project_root))
    assert code == 0 and "wrote storage/traceability/matrix.yml" in err
    path = project_root / "storage/traceability/matrix.yml"
    data = yaml.safe_load(path.read_text())
    assert data["version"] == "1.0"
    entry = data["requirements"]["REQ-AUTH-001"]
    assert entry["status"] == "fully-traced"
    assert entry["code"] == [{"path": "src/auth/login.py", "line": 4, "type": "comment"}]
    assert data["summary"]["totalRequirements"] == 4
    assert data["summary"]["coveragePercent"] == 75.0
    first = path.read_bytes()
    _, _, err = musubi("trace", "matrix", "--write", "--no-commits", "-C", str(project_root))
    assert "unchanged" in err and path.read_bytes() == first


def test_coverage_gaps_and_impact(project_root: Path, musubi: Cli) -> None:
    code, out, _ = musubi("trace", "coverage", "--json", "--no-commits", "-C", str(project_root))
    assert code == 0 and '"tests": 75.0' in out
    project = load_project(project_root)
    matrix = build_matrix(project, collect_links(project, commits=False))
    result = impact(project, matrix, "REQ-AUTH-002")
    assert result["tasks"] == ["TASK-002"]
    assert result["dependentTasks"] == ["TASK-003", "TASK-004", "TASK-005"]
    assert result["adrs"] == ["ADR-001"]
    assert result["code"] == ["src/auth/login.py:9"]
    assert result["relatedRequirements"] == ["REQ-AUTH-001", "REQ-AUTH-003"]


def test_reports_in_markdown_and_html(project_root: Path, musubi: Cli) -> None:
    code, out, _ = musubi("trace", "report", "--no-commits", "-C", str(project_root))
    assert code == 0
    assert "| REQ-AUTH-004 | Session Refresh |" in out
    assert "- **REQ-AUTH-004**: REQ-AUTH-004 has no design, code, tests link" in out
    target = project_root / "report.html"
    code, _, _ = musubi(
        "trace",
        "report",
        "--format",
        "html",
        "-o",
        str(target),
        "--no-commits",
        "-C",
        str(project_root),
    )
    html = target.read_text()
    assert code == 0 and html.startswith("<!doctype html>")
    assert '<tr class="untraced">' not in html and '<tr class="partial">' in html


def test_trace_check_percentage_follows_require(tmp_path: Path, musubi: Cli) -> None:
    """Before: a requirement with code and tests, checked with --require code,tests, was
    reported as "0.0% fully traced" (the percentage always asked for design too)."""
    (tmp_path / "storage/specs").mkdir(parents=True)
    (tmp_path / "storage/specs/pay-requirements.md").write_text(
        "# Payment Requirements\n\n### REQ-PAY-001: Refunds\n\n**EARS Statement**:\n```\n"
        "WHEN a refund is requested, the system SHALL refund the payment within 5 days.\n```\n"
    )
    for path in ("src/pay.py", "tests/test_pay.py"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("# REQ-PAY-001\nVALUE = 1\n")
    args = ("trace", "check", "--no-commits", "-C", str(tmp_path))
    code, out, _ = musubi(*args, "--require", "code,tests")
    assert code == 0 and "OK: 1 requirement(s), 100.0% traced (code, tests), 0 gap(s)" in out
    code, _, err = musubi(*args)
    assert code == 1 and "0.0% traced (design, code, tests), 1 gap(s)" in err
