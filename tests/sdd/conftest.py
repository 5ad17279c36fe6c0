"""Shared fixtures for the SDD tests: a real-style MUSUBI project copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# The fixture project has its own tests/ folder; it is data, not part of this suite.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(FIXTURES / "auth-project", root)
    return root


CliResult = tuple[int, str, str]


@pytest.fixture
def musubi() -> Callable[..., CliResult]:
    """Run ``musubi`` in-process; returns (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from musubi.cli.main import cli

    def run(*args: str) -> CliResult:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run
