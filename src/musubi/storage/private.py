"""The server's own data stays readable by the server's user only.

``MUSUBI_HOME`` holds the SQLite database (every tenant's users, key hashes, audit log,
encrypted provider credentials), the audit signing key and the secret-box key. Created
with the process umask (usually 022) they were readable by every local user. Here the
directory is made ``0700`` and the database files ``0600`` when created, and tightened to
that (with a warning in the log) when an older installation left them open.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file"]

log = logging.getLogger("musubi.storage")


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; tighten it if it is open."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing; tighten it if it is open."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path, 0o600)
    else:
        os.close(fd)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        log.warning("%s was mode %o; making it %o (private to this user)", path, current, mode)
        path.chmod(mode)
