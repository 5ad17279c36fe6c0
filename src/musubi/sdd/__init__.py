"""Spec-driven development core: MUSUBI documents, EARS, workflow, gates and traceability.

Everything here works on a plain repository (``steering/`` and ``storage/``) with no server.
The most used entry points are re-exported lazily so ``import musubi.sdd`` stays cheap::

    from musubi.sdd import load_project
    project = load_project(Path("."))
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Diagnostic", "Project", "Severity", "load_project"]

_EXPORTS = {
    "Diagnostic": "musubi.sdd.diagnostics",
    "Severity": "musubi.sdd.diagnostics",
    "Project": "musubi.sdd.project",
    "load_project": "musubi.sdd.project",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'musubi.sdd' has no attribute {name!r}")
