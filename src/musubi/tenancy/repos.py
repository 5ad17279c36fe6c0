"""Where a project's repository may live on the server.

The SDD API reads a project's specs and code from ``repo_path``. Since the server reads
its own disk, a tenant may only name a directory under ``<repos root>/<tenant id>/``
(symlinks resolved), so no tenant can point a project at another tenant's repository or
at anything else on the host.

The server's own directories are nobody's business but the operator's: answers and error
messages name a repository relative to the tenant's directory (``specs/app``), never by
its absolute path on the server (:func:`shown_repo_path`). What is stored is the resolved
absolute path, which the SDD and knowledge routes read.
"""

from __future__ import annotations

from pathlib import Path

from musubi.errors import InvalidInput

__all__ = ["check_repo_path", "shown_repo_path", "tenant_repos_dir"]

_WHERE = "a directory under this tenant's repositories (<repos root>/<tenant id>/)"


def tenant_repos_dir(repos_root: Path, tenant_id: str) -> Path:
    return (repos_root / tenant_id).resolve()


def check_repo_path(repos_root: Path, tenant_id: str, repo_path: str) -> str:
    """The resolved path, or :class:`InvalidInput` saying where it must be."""
    if "\x00" in repo_path:
        raise InvalidInput("repo_path: contains a NUL character", field="repo_path")
    allowed = tenant_repos_dir(repos_root, tenant_id)
    candidate = Path(repo_path)
    if not candidate.is_absolute():
        candidate = allowed / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(allowed) or resolved == allowed:
        raise InvalidInput(f"repo_path: must be {_WHERE}", field="repo_path")
    if not resolved.is_dir():
        shown = resolved.relative_to(allowed).as_posix()
        raise InvalidInput(f"repo_path: {shown!r} is not a directory", field="repo_path")
    return str(resolved)


def shown_repo_path(repos_root: Path, tenant_id: str, stored: str | None) -> str | None:
    """What the API shows of a stored ``repo_path``: relative to the tenant's directory
    (what :func:`check_repo_path` accepts back). A path outside it (the repos root was
    moved since) is not shown at all."""
    if not stored:
        return stored
    path = Path(stored)
    allowed = tenant_repos_dir(repos_root, tenant_id)
    if not path.is_absolute():
        return path.as_posix()
    if not path.is_relative_to(allowed):
        return None
    return path.relative_to(allowed).as_posix()
