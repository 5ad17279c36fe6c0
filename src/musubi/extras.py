"""The distribution's name, and the one way every message tells how to install an extra.

The import package and the command are ``musubi``; the distribution is not, because the
name ``musubi`` on PyPI belongs to an unrelated project, which an install line naming it
would fetch.
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_command"]

DISTRIBUTION = "musubi-platform"


def install_command(extra: str) -> str:
    """How to add EXTRA, from a built wheel or from a checkout (editable, as the README)."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
