"""Trace-link recovery: suggest requirement -> code links that nobody wrote down.

Pure Python (stdlib only). See ``docs/trace-recovery.md`` for the method and its measured
quality on the public eTour and SMOS gold sets.
"""

from __future__ import annotations

from musubi.sdd.recovery.recover import (
    Evidence,
    RecoveryConfig,
    RecoveryResult,
    Requirement,
    SourceFile,
    Suggestion,
    recover,
)

__all__ = [
    "Evidence",
    "RecoveryConfig",
    "RecoveryResult",
    "Requirement",
    "SourceFile",
    "Suggestion",
    "recover",
]
