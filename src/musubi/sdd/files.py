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
    permission bits when it already exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (for messages and the matrix)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
