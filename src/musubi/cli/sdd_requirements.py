"""``musubi requirements new|add|list|validate``."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import click

from musubi.cli.output import emit, fail, json_option
from musubi.cli.sdd_common import handle_errors, path_option, print_diagnostics
from musubi.errors import Conflict, NotFound
from musubi.sdd.diagnostics import Severity
from musubi.sdd.ears import check_requirement, classify
from musubi.sdd.files import atomic_write
from musubi.sdd.ids import new_distributed_id, next_sequential_id, parse_id
from musubi.sdd.project import Project, feature_of, load_project
from musubi.sdd.quality import validate_requirements
from musubi.sdd.requirements import Requirement, RequirementsDocument
from musubi.sdd.scaffold import render_template

__all__ = ["requirements"]


@click.group()
def requirements() -> None:
    """EARS requirements in storage/specs/<feature>-requirements.md."""


def _doc(project: Project, feature: str) -> RequirementsDocument:
    for doc in project.requirement_docs:
        if feature_of(doc.path) == feature or doc.path == feature:
            return doc
    raise NotFound(
        f"no requirements file for {feature!r}; create it with `musubi requirements new {feature}`"
    )


@requirements.command("new")
@click.argument("feature")
@click.option("--title", help="Document title (default: the feature name).")
@path_option
@handle_errors
def new(feature: str, title: str | None, root: Path) -> None:
    """Create storage/specs/FEATURE-requirements.md."""
    path = root / "storage" / "specs" / f"{feature}-requirements.md"
    if path.exists():
        raise Conflict(f"{path.relative_to(root)} already exists")
    project = load_project(root)
    name = project.steering.project.name if project.steering.project else root.resolve().name
    atomic_write(
        path,
        render_template(
            "specs/requirements.md",
            title=title or feature.replace("-", " ").title(),
            date=date.today().isoformat(),
            project=name or "",
        ),
    )
    click.echo(f"created {path.relative_to(root)}")


@requirements.command("add")
@click.argument("feature")
@click.option("--title", required=True, help="Short title of the requirement.")
@click.option("--statement", required=True, help="The EARS statement (… SHALL …).")
@click.option("--scope", help="Component in the ID, e.g. AUTH for REQ-AUTH-004.")
@click.option("--priority", default="P2", show_default=True, help="P0 (highest) to P3.")
@click.option("--status", default="Draft", show_default=True, help="Draft, Approved, Implemented…")
@click.option("--criterion", "criteria", multiple=True, help="Acceptance criterion (repeat).")
@click.option("--id", "req_id", help="Use this ID instead of the next free one.")
@click.option(
    "--distributed",
    is_flag=True,
    help="Draw a collision-free ID (REQ-AUTH-K7Q2M4) for work on parallel branches.",
)
@click.option("--strict", is_flag=True, help="Refuse a statement with EARS errors.")
@path_option
@handle_errors
def add(
    feature: str,
    title: str,
    statement: str,
    scope: str | None,
    priority: str,
    status: str,
    criteria: tuple[str, ...],
    req_id: str | None,
    distributed: bool,
    strict: bool,
    root: Path,
) -> None:
    """Append a requirement to FEATURE's requirements file and print its ID."""
    project = load_project(root)
    doc = _doc(project, feature)
    existing = [r.id for r in project.requirements]
    ids = [sid for r in doc.items if (sid := parse_id(r.id))]
    kinds = Counter(sid.kind for sid in ids)
    kind = kinds.most_common(1)[0][0] if kinds else "REQ"  # FR-CRUD-006 in a file of FR-…
    if scope is None:
        scopes = Counter(sid.scope for sid in ids if sid.kind == kind)
        scope = scopes.most_common(1)[0][0] if scopes else feature.upper().replace("-", "")
    if req_id is None:
        req_id = (
            new_distributed_id(kind, scope)
            if distributed
            else next_sequential_id(kind, scope, existing)
        )
    if req_id in existing:
        raise Conflict(f"{req_id} already exists")
    if parse_id(req_id) is None:
        fail(f"{req_id!r} is not a valid ID (expected e.g. REQ-AUTH-001)")
    pattern = classify(statement).pattern or "ubiquitous"
    req = Requirement(
        id=req_id,
        title=title,
        pattern=pattern.replace("-", " ").title().replace(" ", "-"),
        priority=priority,
        status=status,
        statement=statement,
        acceptance_criteria=list(criteria),
    )
    req.file = doc.path
    problems = check_requirement(req)
    for d in problems:
        click.echo(f"{d.severity.value}: {d.message}", err=True)
    if strict and any(d.severity is Severity.ERROR for d in problems):
        fail("not added (--strict): fix the EARS errors above")
    doc.add(req)
    project.save(doc)
    click.echo(req_id)


@requirements.command("list")
@click.argument("feature", required=False)
@path_option
@json_option
@handle_errors
def list_(feature: str | None, root: Path, as_json: bool) -> None:
    """List requirements with their EARS pattern, priority and status."""
    project = load_project(root)
    docs = [_doc(project, feature)] if feature else project.requirement_docs
    rows = [
        {
            "id": r.id,
            "title": r.title,
            "pattern": classify(r.statement).pattern,
            "priority": r.priority,
            "status": r.status,
            "criteria": len(r.acceptance_criteria),
            "location": f"{r.file}:{r.line}",
        }
        for d in docs
        for r in d.items
    ]
    emit(
        rows,
        as_json=as_json,
        title="Requirements",
        columns=["id", "title", "pattern", "priority", "status", "criteria", "location"],
    )


@requirements.command("validate")
@click.argument("feature", required=False)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@path_option
@json_option
@handle_errors
def validate(feature: str | None, strict: bool, root: Path, as_json: bool) -> None:
    """Check EARS patterns, wording and acceptance criteria; exit 1 on errors."""
    project = load_project(root)
    docs = [_doc(project, feature)] if feature else project.requirement_docs
    diags = [d for doc in docs for d in doc.diagnostics]
    diags += [d for d in project.diagnostics if any(d.file == doc.path for doc in docs)]
    diags += validate_requirements([r for d in docs for r in d.items])
    items = print_diagnostics(diags, as_json=as_json)
    worst = {Severity.ERROR} | ({Severity.WARNING} if strict else set())
    if any(d.severity in worst for d in items):
        raise SystemExit(1)
