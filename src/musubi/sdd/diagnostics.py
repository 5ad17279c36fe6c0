"""Diagnostics: what is wrong in a document, where, and how bad.

Parsers never raise on malformed input; they return the part they understood and a list of
:class:`Diagnostic` objects naming the file, the line and what was expected there.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel

__all__ = ["Diagnostic", "Severity", "count_by_severity", "has_errors"]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


class Diagnostic(BaseModel):
    """One finding. ``line`` is 1-based; ``None`` when the finding concerns the whole file."""

    file: str
    line: int | None = None
    severity: Severity = Severity.ERROR
    code: str
    message: str
    item: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity.value}: {self.message}"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def count_by_severity(diagnostics: Iterable[Diagnostic]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for d in diagnostics:
        counts[d.severity.value] += 1
    return counts
