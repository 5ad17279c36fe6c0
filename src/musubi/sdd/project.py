"""A whole MUSUBI project loaded from disk: steering plus every spec under ``storage/``.

Loading never stops at a bad file: each problem becomes a diagnostic and the rest loads.
Nothing is written back unless a caller asks :meth:`Project.save`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from musubi.sdd.design import Adr, DesignDocument, parse_design
from musubi.sdd.diagnostics import Diagnostic
from musubi.sdd.files import UndecodableFile, atomic_write, read_text, relpath
from musubi.sdd.ids import IdLocation, find_collisions
from musubi.sdd.models import SpecDocument
from musubi.sdd.requirements import Requirement, RequirementsDocument, parse_requirements
from musubi.sdd.steering import Steering, load_steering
from musubi.sdd.tasks import Task, TasksDocument, parse_tasks

__all__ = ["Project", "feature_of", "load_project", "spec_files"]

DocT = TypeVar("DocT")


def spec_files(root: Path, kind: str) -> list[Path]:
    """Files holding ``kind`` ("requirements", "design", "tasks"), in a stable order.

    ``storage/<kind>/`` (``storage/design/``, ``storage/tasks/``) and, as MUSUBI also does,
    ``storage/specs/**/*<kind>*.md``.
    """
    storage = root / "storage"
    found: set[Path] = set()
    if kind != "requirements":
        found |= {p for p in (storage / kind).rglob("*.md")}
    found |= {p for p in (storage / "specs").rglob("*.md") if kind in p.name.lower()}
    if kind == "requirements":
        found |= {p for p in (storage / "requirements").rglob("*.md")}
    return sorted(p for p in found if p.is_file())


def feature_of(path: str) -> str:
    """``storage/specs/auth-requirements.md`` -> ``auth``."""
    stem = Path(path).stem
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


def load_project(root: Path) -> Project:
    root = root.resolve()
    diags: list[Diagnostic] = []
    project = Project(
        root=root,
        steering=load_steering(root),
        requirement_docs=_load(root, spec_files(root, "requirements"), parse_requirements, diags),
        design_docs=_load(root, spec_files(root, "design"), parse_design, diags),
        task_docs=_load(root, spec_files(root, "tasks"), parse_tasks, diags),
    )
    defined = [
        IdLocation(item.id, item.file, item.line) for doc in project.documents for item in doc.items
    ]
    diags += find_collisions(defined)
    project.diagnostics = diags
    return project
