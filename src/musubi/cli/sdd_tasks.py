"""``musubi tasks new|add|list|graph``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option, print_diagnostics
from musubi.errors import Conflict, NotFound
from musubi.sdd.files import atomic_write
from musubi.sdd.graph import build_graph
from musubi.sdd.ids import new_distributed_id, next_id_in_style
from musubi.sdd.project import Project, feature_of, load_project
from musubi.sdd.scaffold import render_template
from musubi.sdd.tasks import Task, TasksDocument

__all__ = ["tasks"]


@click.group()
def tasks() -> None:
    """Task breakdowns and their dependency graph."""


def _doc(project: Project, feature: str) -> TasksDocument:
    for doc in project.task_docs:
        if feature_of(doc.path) == feature or doc.path == feature:
            return doc
    raise NotFound(f"no tasks file for {feature!r}; create it with `musubi tasks new {feature}`")


@tasks.command("new")
@click.argument("feature")
@click.option("--title", help="Document title (default: the feature name).")
@path_option
@handle_errors
def new(feature: str, title: str | None, root: Path) -> None:
    """Create storage/tasks/FEATURE-tasks.md."""
    path = root / "storage" / "tasks" / f"{feature}-tasks.md"
    if path.exists():
        raise Conflict(f"{path.relative_to(root)} already exists")
    atomic_write(
        path,
        render_template(
            "specs/tasks.md",
            title=title or feature.replace("-", " ").title(),
            feature=feature,
            date=date.today().isoformat(),
        ),
    )
    click.echo(f"created {path.relative_to(root)}")


@tasks.command("add")
@click.argument("feature")
@click.option("--title", required=True, help="What is to be done.")
@click.option("--requirement", "reqs", multiple=True, help="Requirement ID (repeat).")
@click.option("--depends-on", "deps", multiple=True, help="Task ID it needs first (repeat).")
@click.option("--priority", help="P0 (highest) to P3.")
@click.option("--estimate", help="e.g. 2h, 1d")
@click.option("--assignee", help="Who does it.")
@click.option(
    "--status",
    default="Not Started",
    show_default=True,
    help="Not Started, In Progress, Done…",
)
@click.option("--distributed", is_flag=True, help="Draw a collision-free task ID.")
@path_option
@handle_errors
def add(
    feature: str,
    title: str,
    reqs: tuple[str, ...],
    deps: tuple[str, ...],
    priority: str | None,
    estimate: str | None,
    assignee: str | None,
    status: str,
    distributed: bool,
    root: Path,
) -> None:
    """Append a task to FEATURE's tasks file and print its ID."""
    project = load_project(root)
    doc = _doc(project, feature)
    known = {t.id for t in project.tasks}
    missing = [d for d in deps if d not in known]
    if missing:
        raise NotFound(f"unknown task(s) in --depends-on: {', '.join(missing)}")
    task_id = (
        new_distributed_id("TASK")
        if distributed
        else next_id_in_style("TASK", [t.id for t in doc.items], known)
    )
    doc.add(
        Task(
            id=task_id,
            title=title,
            requirements=list(reqs),
            depends_on=list(deps),
            priority=priority,
            estimate=estimate,
            assignee=assignee,
            status=status,
        )
    )
    project.save(doc)
    click.echo(task_id)


@tasks.command("list")
@click.argument("feature", required=False)
@path_option
@json_option
@handle_errors
def list_(feature: str | None, root: Path, as_json: bool) -> None:
    """List tasks with status, assignee and dependencies."""
    project = load_project(root)
    docs = [_doc(project, feature)] if feature else project.task_docs
    rows = [
        {
            "id": t.id,
            "title": t.title,
            "status": t.status,
            "priority": t.priority,
            "estimate": t.estimate,
            "assignee": t.assignee,
            "requirements": t.requirements,
            "depends_on": t.depends_on,
            "location": f"{t.file}:{t.line}",
        }
        for d in docs
        for t in d.items
    ]
    emit(
        rows,
        as_json=as_json,
        title="Tasks",
        columns=["id", "title", "status", "priority", "estimate", "assignee", "depends_on"],
    )


@tasks.command("graph")
@click.argument("feature", required=False)
@click.option("--mermaid", is_flag=True, help="Print a Mermaid flowchart.")
@path_option
@json_option
@handle_errors
def graph(feature: str | None, mermaid: bool, root: Path, as_json: bool) -> None:
    """Dependency graph: parallel groups, cycles; exit 1 on a cycle or unknown dependency."""
    project = load_project(root)
    items = _doc(project, feature).items if feature else project.tasks
    g = build_graph(items)
    if mermaid:
        click.echo(g.mermaid(), nl=False)
    elif as_json:
        emit(
            {
                "groups": g.groups,
                "edges": [list(e) for e in g.edges],
                "cycles": g.cycles,
                "blocked": g.blocked,
                "diagnostics": [d.model_dump(mode="json") for d in g.diagnostics],
            },
            as_json=True,
        )
    else:
        rows = [{"group": n, "tasks": grp} for n, grp in enumerate(g.groups, start=1)]
        emit(
            rows,
            as_json=False,
            title="Parallel groups (each group can run at once)",
            columns=["group", "tasks"],
        )
        if g.diagnostics:
            print_diagnostics(g.diagnostics, as_json=False)
    if any(d.severity.value == "error" for d in g.diagnostics):
        raise SystemExit(1)
