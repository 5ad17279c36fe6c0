"""Trace-link recovery on a MUSUBI project: its requirements against its code files.

Requirements come from ``storage/specs/*-requirements.md`` through the SDD reader; code
files are the repository's tracked files (``git ls-files``) or, outside git, a walk that
skips hidden, vendored and build folders. A file that already names a requirement's ID is
an explicit link, not a suggestion, so that pair is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from musubi.git import run_git
from musubi.sdd.recovery.datasets import read_text
from musubi.sdd.recovery.dense import TextEmbedder, dense_similarity
from musubi.sdd.recovery.recover import (
    RecoveryConfig,
    RecoveryResult,
    Requirement,
    SourceFile,
    recover,
)
from musubi.text import detect_language

__all__ = ["CODE_SUFFIXES", "code_files", "project_requirements", "recover_project"]


def _suffixes(text: str) -> frozenset[str]:
    return frozenset(text.split())


CODE_SUFFIXES = _suffixes(
    ".py .pyi .java .kt .kts .scala .groovy .cs .fs .vb .go .rs .c .h .cc .cpp .hpp .m .mm "
    ".swift .js .jsx .mjs .cjs .ts .tsx .vue .svelte .rb .php .pl .lua .dart .ex .exs .erl "
    ".clj .hs .ml .r .jl .sh .sql"
)
_SKIP_DIRS = frozenset(
    {"node_modules", "vendor", "dist", "build", "target", "venv", "__pycache__", "site-packages"}
)
_SKIP_TOP = frozenset({"storage", "steering"})
_MAX_BYTES = 512 * 1024


def _tracked(root: Path) -> list[str] | None:
    out = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if out is None:
        return None
    return [name for name in out.decode("utf-8", "replace").split("\0") if name]


def _walk(root: Path) -> list[str]:
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in _SKIP_DIRS for part in rel.parts[:-1]):
            continue
        if path.is_file():
            out.append(rel.as_posix())
    return out


def code_files(root: Path, suffixes: Iterable[str] = CODE_SUFFIXES) -> list[SourceFile]:
    """Source files of the repository at ``root`` (paths relative to it, sorted)."""
    root = Path(root)
    wanted = {suffix.lower() for suffix in suffixes}
    names = _tracked(root)
    if names is None:
        names = _walk(root)
    out: list[SourceFile] = []
    for name in sorted(set(names)):
        rel = Path(name)
        if rel.suffix.lower() not in wanted or (rel.parts and rel.parts[0] in _SKIP_TOP):
            continue
        path = root / rel
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            continue
        out.append(SourceFile(rel.as_posix(), read_text(path)))
    return out


def project_requirements(root: Path) -> list[Requirement]:
    """Each ``REQ-*`` block as one text: title, EARS statement, criteria, other fields."""
    from musubi.sdd.project import load_project

    project = load_project(Path(root))
    out = []
    for item in project.requirements:
        parts = [item.title, item.statement, *item.acceptance_criteria, *item.extra.values()]
        out.append(Requirement(item.id, "\n".join(part for part in parts if part)))
    return out


def recover_project(
    root: Path,
    config: RecoveryConfig | None = None,
    requirement_ids: Iterable[str] = (),
    embedder: TextEmbedder | None = None,
) -> tuple[RecoveryResult, list[Requirement]]:
    """Suggest links for a project (all requirements, or only ``requirement_ids``).

    With an ``embedder``, the dense signal is mixed in where the requirements' language is
    one the config lets it read (the texts are embedded only then)."""
    config = config or RecoveryConfig()
    requirements = project_requirements(root)
    files = code_files(root)
    dense = None
    language = config.language or detect_language(r.text for r in requirements)
    if embedder is not None and config.dense_weight > 0 and language in config.dense_languages:
        dense = dense_similarity(
            embedder, {r.id: r.text for r in requirements}, {f.path: f.text for f in files}
        )
    result = recover(requirements, files, config, dense)
    wanted = set(requirement_ids)
    texts = {f.path: f.text for f in files}
    result.suggestions = [
        s
        for s in result.suggestions
        if (not wanted or s.requirement in wanted) and s.requirement not in texts[s.path]
    ]
    return result, requirements
