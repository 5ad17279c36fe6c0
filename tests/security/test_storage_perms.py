"""The server's own data directory is private to the server's user.

Before: with the usual umask (022) ``musubi.db`` (every tenant's users, key hashes, audit
log and encrypted credentials) was created world-readable (issue 14, finding 15). Now
MUSUBI_HOME is 0700 and the database files 0600, and an older installation's open modes
are tightened at start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from musubi.api.app import open_state
from musubi.settings import Settings


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _start(home: Path) -> None:
    state = await open_state(Settings(home=home, database_url=None), announce=False)
    await state.close()


async def test_a_new_home_and_database_are_private(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "musubi-home"
    await _start(home)
    assert _mode(home) == 0o700
    files = [home / "musubi.db", home / "audit-signing.pem"]
    files += [p for p in home.glob("musubi.db-*")]  # WAL and shared-memory files
    for path in files:
        assert _mode(path) == 0o600, path


async def test_an_open_existing_installation_is_tightened(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "musubi-home"
    await _start(home)
    home.chmod(0o755)
    (home / "musubi.db").chmod(0o644)
    await _start(home)
    assert _mode(home) == 0o700
    assert _mode(home / "musubi.db") == 0o600
