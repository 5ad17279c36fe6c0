"""The integrations' tests reach the vendors' fakes on loopback: the operator's egress
allowance for 127.0.0.1 is set, as a self-hosted tracker would need."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from musubi.settings import Settings
from tests.integrations.fakes import FakeAzureBoards, FakeGitHub, FakeGitLab, FakeJira


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        max_body_bytes=64 * 1024,
        bootstrap_key=None,
        egress_allow="127.0.0.1",
    )


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def azure_devops() -> Iterator[FakeAzureBoards]:
    with FakeAzureBoards().serve() as fake:
        yield fake  # type: ignore[misc]
