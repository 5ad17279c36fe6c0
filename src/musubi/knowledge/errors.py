"""Errors of the knowledge engine (all under :class:`musubi.errors.MusubiError`)."""

from __future__ import annotations

from musubi.errors import Conflict, MusubiError
from musubi.extras import install_command

__all__ = ["IndexMissing", "MissingExtra"]


class MissingExtra(MusubiError):
    """An optional dependency of the knowledge engine is not installed."""

    def __init__(self, extra: str, package: str, install: str | None = None) -> None:
        """``install``: the command, when the package is not part of the extra itself."""
        how = f"install it: {install}" if install else ""
        how = how or f"install the extra: {install_command(extra)}"
        super().__init__(f"{package} is not installed; {how}", extra=extra, package=package)


class IndexMissing(Conflict):
    """Search or context was asked of a repository that has not been indexed."""
