"""Where a project's repository may live on the server.

The SDD API reads a project's specs and code from ``repo_path``. Since the server reads
its own disk, a tenant may only name a directory under ``<repos root>/<tenant id>/``
(symlinks resolved), so no tenant can point a project at another tenant's repository or
at anything else on the host.
"""

from __future__ import annotations

from pathlib import Path

from musubi.errors import InvalidInput

__all__ = ["check_repo_path", "tenant_repos_dir"]


def tenant_repos_dir(repos_root: Path, tenant_id: str) -> Path:
    return (repos_root / tenant_id).resolve()


def check_repo_path(repos_root: Path, tenant_id: str, repo_path: str) -> str:
    """The resolved path, or :class:`InvalidInput` saying where it must be."""
    allowed = tenant_repos_dir(repos_root, tenant_id)
    candidate = Path(repo_path)
    if not candidate.is_absolute():
        candidate = allowed / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(allowed) or resolved == allowed:
        raise InvalidInput(
            f"repo_path must be a directory under {allowed}/ (this tenant's repositories)",
            field="repo_path",
        )
    if not resolved.is_dir():
        raise InvalidInput(f"repo_path {resolved} is not a directory", field="repo_path")
    return str(resolved)
