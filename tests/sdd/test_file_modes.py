"""Files ``musubi`` writes into a repository get the permissions the user's umask gives."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.scaleout.cluster import musubi_command


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    """Before: 0600 whatever the umask (the temporary file's mode was kept)."""
    for args in (("design", "new", "auth"), ("change", "init", "add-mfa")):
        subprocess.run(
            [*musubi_command(), *args, "-C", str(tmp_path)], umask=umask, check=True, timeout=60
        )
    for made in ("storage/design/auth-design.md", "storage/changes/add-mfa.md"):
        assert _mode(tmp_path / made) == expected, made


def test_a_rewritten_file_keeps_its_mode(tmp_path: Path) -> None:
    subprocess.run([*musubi_command(), "design", "new", "auth", "-C", str(tmp_path)], check=True)
    design = tmp_path / "storage/design/auth-design.md"
    design.chmod(0o640)
    adr = ["design", "add-adr", "auth", "--title", "Use bcrypt", "--status", "Accepted"]
    subprocess.run(
        [*musubi_command(), *adr, "-C", str(tmp_path)],
        umask=0o077,
        check=True,
    )
    assert "Use bcrypt" in design.read_text() and _mode(design) == 0o640
