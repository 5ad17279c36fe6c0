"""Find requirement IDs written in the repository: code, tests, commits and the specs.

Every link carries its evidence: ``path`` and ``line`` for files, ``sha`` for commits, and
``via`` saying how the ID was written (``comment``, ``test-name``, ``marker``, ``string``…).
Test names in snake case count too: ``test_req_auth_001_login`` links to ``REQ-AUTH-001``,
``test_req_001_kg_001`` to ``REQ-001-KG-001``. IDs of every shape the ID grammar accepts are
found (``FR-CRUD-001``, ``REQ-TOOL-001``, ``NFR-PERF-001``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel

from musubi.git import run_git
from musubi.sdd.files import UndecodableFile, read_text
from musubi.sdd.ids import ID_RE, KIND_GROUPS, find_ids
from musubi.sdd.project import Project

__all__ = [
    "CODE_SUFFIXES",
    "EXCLUDED_DIRS",
    "Link",
    "LinkKind",
    "is_test_file",
    "scan_commits",
    "scan_file",
    "scan_sources",
    "spec_links",
]

LinkKind = Literal["design", "task", "code", "test", "commit"]
CODE_SUFFIXES = frozenset(
    [
        ".py",
        ".pyi",
        ".js",
        ".mjs",
        ".cjs",
        ".jsx",
        ".ts",
        ".tsx",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".cs",
        ".swift",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".m",
        ".mm",
        ".sh",
        ".bash",
        ".sql",
        ".vue",
        ".svelte",
        ".dart",
        ".ex",
        ".exs",
        ".lua",
        ".r",
        ".feature",
        ".robot",
    ]
)
EXCLUDED_DIRS = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "env",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        "dist",
        "build",
        "target",
        ".next",
        "coverage",
        "htmlcov",
        "storage",
        "steering",
        ".claude",
        ".cursor",
        ".gemini",
        ".qwen",
        ".codex",
        ".windsurf",
        ".idea",
        ".vscode",
    ]
)
_TEST_DIRS = {"tests", "test", "__tests__", "spec", "specs", "e2e", "testing"}
_SNAKE = re.compile(r"(?i)(?:^|_)(req|nfr|fr|adr|task)_((?:[a-z0-9]+_)*?)(\d{3,})(?=_|$)")
_DEF = re.compile(
    r"^\s*(?:async\s+)?(?:def|function|func|fn|sub)\s+([A-Za-z_]\w*)"
    r"|^\s*(?:public\s+|private\s+|protected\s+)?(?:static\s+)?void\s+([A-Za-z_]\w*)\s*\("
)
_COMMENT = re.compile(r"^\s*(#|//|/\*|\*|--|<!--|;)|\s(#|//)\s|/\*")


class Link(BaseModel):
    id: str
    kind: LinkKind
    path: str | None = None
    line: int | None = None
    sha: str | None = None
    date: str | None = None
    via: str = "reference"
    text: str = ""

    @property
    def where(self) -> str:
        if self.sha:
            return self.sha[:12]
        return f"{self.path}:{self.line}" if self.line else str(self.path)


def is_test_file(path: str) -> bool:
    p = PurePosixPath(path)
    name = p.name
    return (
        bool(_TEST_DIRS.intersection(p.parts[:-1]))
        or name.startswith("test_")
        or re.search(r"(_test|_spec|Test|Tests|Spec|IT)\.[A-Za-z]+$", name) is not None
        or re.search(r"\.(test|spec)\.[A-Za-z]+$", name) is not None
    )


def _ids_from_name(name: str) -> list[str]:
    out = []
    for m in _SNAKE.finditer(name):
        scope = m[2].strip("_").upper().replace("_", "-")
        ident = "-".join(p for p in (m[1].upper(), scope, m[3]) if p)
        if ID_RE.fullmatch(ident):
            out.append(ident)
    return out


def scan_file(text: str, path: str) -> list[Link]:
    kind: LinkKind = "test" if is_test_file(path) else "code"
    out: list[Link] = []
    for number, line in enumerate(text.splitlines(), start=1):
        seen: set[str] = set()
        d = _DEF.match(line)
        name = d and (d[1] or d[2])
        if name:
            for ident in _ids_from_name(name):
                seen.add(ident)
                out.append(
                    Link(
                        id=ident,
                        kind=kind,
                        path=path,
                        line=number,
                        via="test-name" if kind == "test" else "name",
                        text=line.strip()[:160],
                    )
                )
        for ident, col in find_ids(line):
            if ident in seen:
                continue
            seen.add(ident)
            if re.search(r"\.mark\.|@Tag|@Requirement|@pytest", line):
                via = "marker"
            elif _COMMENT.search(line[: col + 1]):
                via = "comment"
            elif name:
                via = "test-name" if kind == "test" else "name"
            elif re.search(r"[\"']", line[:col]):
                via = "string"
            else:
                via = "reference"
            out.append(
                Link(id=ident, kind=kind, path=path, line=number, via=via, text=line.strip()[:160])
            )
    return out


def _git_files(root: Path) -> list[str] | None:
    out = run_git(root, "ls-files", "-co", "--exclude-standard", "-z")
    if out is None:
        return None
    return [p for p in out.decode("utf-8", "replace").split("\0") if p]


def _walk(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in ("storage", "steering")]
        rel = Path(dirpath).relative_to(root)
        out += [(rel / f).as_posix() for f in sorted(filenames)]
    return out


def scan_sources(root: Path) -> list[Link]:
    """Links from every source file under ``root`` (git-tracked and untracked, not ignored)."""
    files = _git_files(root)
    files = _walk(root) if files is None else files
    out: list[Link] = []
    for rel in sorted(files):
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).suffix.lower() not in CODE_SUFFIXES:
            continue
        if parts[0] in ("storage", "steering") or any(p in EXCLUDED_DIRS for p in parts[:-1]):
            continue
        try:
            text = read_text(root / rel)
        except (OSError, UndecodableFile):
            continue
        out += scan_file(text, rel)
    return out


def scan_commits(root: Path, *, max_count: int | None = None) -> list[Link]:
    """Links from commit messages (``git log``); empty outside a git repository."""
    args = ["log", "--format=%H%x1f%ad%x1f%s%x1f%b%x1e", "--date=short"]
    if max_count:
        args.append(f"--max-count={max_count}")
    stdout = run_git(root, *args)
    if stdout is None:
        return []
    out: list[Link] = []
    for record in stdout.decode("utf-8", "replace").split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) < 4:
            continue
        sha, day, subject, body = fields[0].strip(), fields[1], fields[2], fields[3]
        for ident in dict.fromkeys(i for i, _ in find_ids(f"{subject}\n{body}")):
            out.append(
                Link(id=ident, kind="commit", sha=sha, date=day, via="commit", text=subject[:160])
            )
    return out


def spec_links(project: Project) -> list[Link]:
    """Design mentions and task links, from the spec documents themselves."""
    out: list[Link] = []
    requirement_kinds = KIND_GROUPS["requirements"]
    for doc in project.design_docs:
        for ref in doc.references:
            if ref.id.split("-")[0] in requirement_kinds:
                out.append(
                    Link(
                        id=ref.id,
                        kind="design",
                        path=ref.file,
                        line=ref.line,
                        via="design-doc",
                        text=ref.context,
                    )
                )
    for task in project.tasks:
        for req in task.requirements:
            out.append(
                Link(
                    id=req,
                    kind="task",
                    path=task.file,
                    line=task.line,
                    via=task.id,
                    text=task.title,
                )
            )
    return out
