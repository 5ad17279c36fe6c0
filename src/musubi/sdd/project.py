"""A whole MUSUBI project loaded from disk: steering plus every spec under ``storage/``.

Loading never stops at a bad file: each problem becomes a diagnostic and the rest loads.
Nothing is written back unless a caller asks :meth:`Project.save`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from musubi.sdd.design import Adr, DesignDocument, parse_design
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.files import UndecodableFile, atomic_write, read_text, relpath
from musubi.sdd.ids import IdLocation, find_collisions
from musubi.sdd.models import SpecDocument
from musubi.sdd.requirements import Requirement, RequirementsDocument, parse_requirements
from musubi.sdd.steering import Steering, load_steering
from musubi.sdd.tasks import Task, TasksDocument, parse_tasks

__all__ = [
    "SPEC_KINDS",
    "Project",
    "feature_of",
    "load_project",
    "spec_files",
    "spec_kind",
    "translation_of",
]

DocT = TypeVar("DocT")


SPEC_KINDS = ("requirements", "design", "tasks")
# Folders under storage/ that hold specs. changes/ (delta specs), archive/ and traceability/
# are read by their own commands.
SPEC_DIRS = ("specs", "requirements", "design", "tasks", "features")
_NAME_PREFIX = {
    "requirements": ("REQ-", "REQS-", "FR-", "NFR-"),
    "design": ("DES-", "DESIGN-", "ADR-"),
    "tasks": ("TASKS-", "TASK-", "TSK-"),
}
_NAME_WORD = {
    "requirements": ("requirement", "requirements", "req", "reqs"),
    "design": ("design", "designs", "adr", "architecture"),
    "tasks": ("tasks", "task", "tsk"),
}


def spec_kind(path: Path, storage: Path) -> str | None:
    """What a spec file holds, from its folder or name; ``None`` when neither says.

    ``storage/design/…`` is design; ``REQ-001-auth.md`` (an ID-style prefix) is requirements;
    otherwise a word of the name (``auth-requirements.md``, ``v4.0.0-tasks.md``,
    ``features/auth/design.md``).
    """
    rel = path.relative_to(storage)
    if rel.parts[0] in SPEC_KINDS:
        return rel.parts[0]
    name = path.name
    for kind, prefixes in _NAME_PREFIX.items():
        if name.upper().startswith(prefixes):
            return kind
    words = re.split(r"[^a-z]+", path.stem.lower())
    for kind, names in _NAME_WORD.items():
        if any(w in names for w in words):
            return kind
    return None


_LOCALE = re.compile(r"^(?P<base>.+)\.(?P<locale>[a-z]{2}(?:-[A-Za-z]{2})?)\.md$")


def translation_of(path: Path) -> Path | None:
    """``auth-requirements.ja.md`` -> ``auth-requirements.md`` when that file exists."""
    m = _LOCALE.match(path.name)
    base = path.with_name(f"{m['base']}.md") if m else None
    return base if base is not None and base.is_file() else None


def _spec_paths(root: Path) -> list[Path]:
    """Spec files, without the translations of files that exist in the main language (they
    repeat the same IDs)."""
    storage = root / "storage"
    found: set[Path] = set()
    for folder in SPEC_DIRS:
        found |= {p for p in (storage / folder).rglob("*.md") if p.is_file()}
    return sorted(p for p in found if translation_of(p) is None)


def spec_files(root: Path, kind: str) -> list[Path]:
    """Files holding ``kind`` ("requirements", "design", "tasks"), in a stable order.

    Every ``*.md`` under ``storage/{specs,requirements,design,tasks,features}/`` whose folder
    or name says ``kind`` (see :func:`spec_kind`), plus those whose name says nothing, which
    are read for every kind (MONJYU's ``FEAT-010-entity-extractor.md`` holds requirements and
    design).
    """
    storage = root / "storage"
    return [p for p in _spec_paths(root) if spec_kind(p, storage) in (kind, None)]


def feature_of(path: str) -> str:
    """``storage/specs/auth-requirements.md`` -> ``auth``; ``features/auth/requirements.md``
    -> ``auth``; ``REQ-001-auth.md`` -> ``REQ-001-auth``."""
    p = Path(path)
    stem = p.stem
    if stem.lower() in SPEC_KINDS and p.parent.name:
        return p.parent.name
    for suffix in ("-requirements", "-design", "-tasks", "_requirements", "_design", "_tasks"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


class Project(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    steering: Steering
    requirement_docs: list[RequirementsDocument] = []
    design_docs: list[DesignDocument] = []
    task_docs: list[TasksDocument] = []
    diagnostics: list[Diagnostic] = []

    @property
    def requirements(self) -> list[Requirement]:
        return [r for d in self.requirement_docs for r in d.items]

    @property
    def tasks(self) -> list[Task]:
        return [t for d in self.task_docs for t in d.items]

    @property
    def adrs(self) -> list[Adr]:
        return [a for d in self.design_docs for a in d.items]

    def requirement(self, req_id: str) -> Requirement | None:
        return next((r for r in self.requirements if r.id == req_id), None)

    def kinds(self) -> list[list[SpecDocument[Any]]]:
        """The documents of each kind: requirements, design, tasks."""
        return [list(self.requirement_docs), list(self.design_docs), list(self.task_docs)]

    @property
    def documents(self) -> list[SpecDocument[Any]]:
        return [*self.requirement_docs, *self.design_docs, *self.task_docs]

    def all_diagnostics(self) -> Iterator[Diagnostic]:
        yield from self.steering.diagnostics
        for doc in self.documents:
            yield from doc.diagnostics
        yield from self.diagnostics

    def save(self, doc: SpecDocument[Any]) -> bool:
        """Write ``doc`` atomically if its text changed; True when the file was written."""
        path = self.root / doc.path
        text = doc.render()
        if path.exists() and read_text(path) == text:
            return False
        atomic_write(path, text)
        return True


def _load(
    root: Path, paths: list[Path], parse: Callable[[str, str], DocT], diags: list[Diagnostic]
) -> list[DocT]:
    out: list[DocT] = []
    for path in paths:
        rel = relpath(path, root)
        try:
            out.append(parse(read_text(path), rel))
        except UndecodableFile as exc:
            diags.append(
                Diagnostic(
                    file=rel, code="file.encoding", message=f"{exc}; expected UTF-8 Markdown"
                )
            )
    return out


def _unclassified(root: Path) -> list[Diagnostic]:
    storage = root / "storage"
    return [
        Diagnostic(
            file=relpath(p, root),
            severity=Severity.INFO,
            code="layout.unclassified",
            message=f"{relpath(p, root)}: neither its folder nor its name says requirements, "
            "design or tasks; it is read for all three (rename it, e.g. "
            f"{p.stem}-requirements.md, to say which)",
        )
        for p in _spec_paths(root)
        if spec_kind(p, storage) is None
    ]


def load_project(root: Path) -> Project:
    root = root.resolve()
    diags: list[Diagnostic] = _unclassified(root)
    project = Project(
        root=root,
        steering=load_steering(root),
        requirement_docs=_load(root, spec_files(root, "requirements"), parse_requirements, diags),
        design_docs=_load(root, spec_files(root, "design"), parse_design, diags),
        task_docs=_load(root, spec_files(root, "tasks"), parse_tasks, diags),
    )
    storage = root / "storage"
    for docs in project.kinds():
        _fold_repeats(docs, {d.path for d in docs if spec_kind(root / d.path, storage) is None})
    defined = [
        IdLocation(item.id, item.file, item.line) for doc in project.documents for item in doc.items
    ]
    diags += find_collisions(defined)
    project.diagnostics = diags
    return project


def _fold_repeats(docs: list[SpecDocument[Any]], unnamed: set[str]) -> None:
    """Table rows of a file whose name says nothing (MONJYU's ``FEAT-001-….md``) that repeat an
    ID defined in a file named for the kind are a summary of it, not a second definition."""
    named = {item.id for doc in docs if doc.path not in unnamed for item in doc.items}
    for doc in docs:
        if doc.path in unnamed:
            for item in list(doc.items):
                if item.id in named and item.source_form == "row":
                    doc.fold(item.id)
