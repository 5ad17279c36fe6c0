"""Reading and writing project files: exact bytes in, atomic writes out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["UndecodableFile", "atomic_write", "read_text", "relpath"]


class UndecodableFile(ValueError):
    """The file is not UTF-8 text."""


def read_text(path: Path) -> str:
    """The file's text with line endings and any BOM kept, so writing it back is byte-exact."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableFile(f"not UTF-8 text (byte {exc.start})") from exc


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    Readers see either the old file or the new one, never half of it. The file keeps its
    permission bits when it already exists; a new one gets what ``open()`` would give it
    (0666 less the umask), not the temporary file's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, for an instant
    os.umask(mask)
    return mask


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (for messages and the matrix)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
