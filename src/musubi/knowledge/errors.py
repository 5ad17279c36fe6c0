"""Errors of the knowledge engine (all under :class:`musubi.errors.MusubiError`)."""

from __future__ import annotations

from musubi.errors import Conflict, MissingExtra

__all__ = ["IndexMissing", "MissingExtra"]


class IndexMissing(Conflict):
    """Search or context was asked of a repository that has not been indexed."""
