"""``musubi design new|add-adr|validate``."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import click

from musubi.cli.output import json_option
from musubi.cli.sdd_common import handle_errors, path_option, print_diagnostics
from musubi.errors import Conflict, NotFound
from musubi.sdd.design import Adr, DesignDocument
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.files import atomic_write
from musubi.sdd.gates import run_gates
from musubi.sdd.ids import new_distributed_id, next_id_in_style
from musubi.sdd.project import Project, feature_of, load_project
from musubi.sdd.scaffold import render_template

__all__ = ["design"]

# A gate finding that names where it is: "REQ-AUTH-004 (storage/specs/x.md:73)[: detail]"
# or "storage/design/x.md: missing C4 container".
_AT_LINE = re.compile(r"^(?P<what>\S+) \((?P<file>[^():]+):(?P<line>\d+)\)(?P<rest>.*)$")
_AT_FILE = re.compile(r"^(?P<file>\S+\.md): (?P<what>.+)$")
_COUNT = re.compile(r"^\d+ (\w+)\(s\)")  # "2 requirement(s) not named…" -> "requirement not…"


@click.group()
def design() -> None:
    """Design documents (C4) and architecture decision records."""


def _doc(project: Project, feature: str) -> DesignDocument:
    for doc in project.design_docs:
        if feature_of(doc.path) == feature or doc.path == feature:
            return doc
    raise NotFound(f"no design file for {feature!r}; create it with `musubi design new {feature}`")


@design.command("new")
@click.argument("feature")
@click.option("--title", help="Document title (default: the feature name).")
@path_option
@handle_errors
def new(feature: str, title: str | None, root: Path) -> None:
    """Create storage/design/FEATURE-design.md with C4 sections."""
    path = root / "storage" / "design" / f"{feature}-design.md"
    if path.exists():
        raise Conflict(f"{path.relative_to(root)} already exists")
    atomic_write(
        path,
        render_template(
            "specs/design.md",
            title=title or feature.replace("-", " ").title(),
            feature=feature,
            date=date.today().isoformat(),
        ),
    )
    click.echo(f"created {path.relative_to(root)}")


@design.command("add-adr")
@click.argument("feature")
@click.option("--title", required=True, help="The decision, in a few words.")
@click.option(
    "--status", default="Proposed", show_default=True, help="Proposed, Accepted, Superseded…"
)
@click.option("--context", help="Why a decision is needed.")
@click.option("--decision", help="What was decided.")
@click.option("--consequences", help="What follows from it.")
@click.option("--requirement", "reqs", multiple=True, help="Requirement ID it serves (repeat).")
@click.option("--distributed", is_flag=True, help="Draw a collision-free ADR ID.")
@path_option
@handle_errors
def add_adr(
    feature: str,
    title: str,
    status: str,
    context: str | None,
    decision: str | None,
    consequences: str | None,
    reqs: tuple[str, ...],
    distributed: bool,
    root: Path,
) -> None:
    """Append an ADR to FEATURE's design file and print its ID."""
    project = load_project(root)
    doc = _doc(project, feature)
    existing = [a.id for a in project.adrs]
    adr_id = (
        new_distributed_id("ADR")
        if distributed
        else next_id_in_style("ADR", [a.id for a in doc.items if a.id.startswith("ADR-")], existing)
    )
    doc.add(
        Adr(
            id=adr_id,
            title=title,
            status=status,
            date=date.today().isoformat(),
            requirements=list(reqs),
            context=context,
            decision=decision,
            consequences=consequences,
        )
    )
    project.save(doc)
    click.echo(adr_id)


@design.command("validate")
@click.argument("feature", required=False)
@path_option
@json_option
@handle_errors
def validate(feature: str | None, root: Path, as_json: bool) -> None:
    """Check design coverage of requirements, C4 sections and ADR status; exit 1 on errors."""
    project = load_project(root)
    docs = [_doc(project, feature)] if feature else project.design_docs
    diags: list[Diagnostic] = [d for doc in docs for d in doc.diagnostics]
    fallback = docs[0].path if docs else "storage/design"
    for check in run_gates(project, stage="design").checks:
        if check.gate != "design" or check.passed:
            continue
        sev = Severity.ERROR if check.level == "critical" else Severity.WARNING
        verdict = _COUNT.sub(r"\1", check.message)
        for finding in check.findings or [check.message]:
            file, line, what = _located(finding, fallback)
            if feature and feature_of(file) != feature and file != fallback:
                continue  # another feature's requirement or document
            diags.append(
                Diagnostic(
                    file=file,
                    line=line,
                    severity=sev,
                    code=f"design.{check.name.replace(' ', '-')}",
                    # the check's verdict, not its name ("requirements covered by
                    # design"), which reads like a pass
                    message=f"{what}: {verdict}",
                )
            )
    items = print_diagnostics(diags, as_json=as_json)
    if any(d.severity is Severity.ERROR for d in items):
        raise SystemExit(1)


def _located(finding: str, fallback: str) -> tuple[str, int | None, str]:
    """(file, line, what) of a gate finding; FALLBACK when it names no place."""
    if m := _AT_LINE.match(finding):
        return m["file"], int(m["line"]), m["what"] + m["rest"]
    if m := _AT_FILE.match(finding):
        return m["file"], 1, m["what"]
    return fallback, None, finding
