"""``musubi trace matrix|gaps|coverage|impact|check|report`` (+ ``recover``, ``evaluate``).

``recover`` and ``evaluate`` (trace-link recovery) live in :mod:`musubi.cli.sdd_recovery`
and are imported only when run.
"""

from __future__ import annotations

from pathlib import Path

import click

from musubi.cli.main import LazyGroup
from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option
from musubi.sdd.files import atomic_write, relpath
from musubi.sdd.project import Project, load_project
from musubi.sdd.trace.matrix import (
    MATRIX_FILE,
    Matrix,
    build_matrix,
    collect_links,
    coverage,
    find_gaps,
    impact,
    traced_percent,
    write_matrix,
)

__all__ = ["trace"]

RECOVERY = {
    "recover": (
        "musubi.cli.sdd_recovery",
        "recover",
        "Suggest requirement→code links with no ID written.",
    ),
    "evaluate": (
        "musubi.cli.sdd_recovery",
        "evaluate",
        "Evaluate trace-link recovery on gold links.",
    ),
}
_DIMS = ("design", "tasks", "code", "tests", "commits")


@click.group(cls=LazyGroup, lazy=RECOVERY)
def trace() -> None:
    """Traceability: requirement -> design -> tasks -> code -> tests -> commits."""


def _require(value: str) -> tuple[str, ...]:
    dims = tuple(d.strip() for d in value.split(",") if d.strip())
    bad = [d for d in dims if d not in _DIMS]
    if bad:
        raise click.BadParameter(f"unknown dimension(s) {', '.join(bad)}; use {', '.join(_DIMS)}")
    return dims


no_commits = click.option("--no-commits", is_flag=True, help="Do not read `git log`.")
require_option = click.option(
    "--require",
    "require",
    default="design,code,tests",
    show_default=True,
    help="Links every requirement needs (from design, tasks, code, tests, commits).",
)


def _matrix(root: Path, no_commits: bool) -> tuple[Project, Matrix]:
    project = load_project(root)
    return project, build_matrix(project, collect_links(project, commits=not no_commits))


@trace.command("matrix")
@click.option("--write", is_flag=True, help=f"Store it in {MATRIX_FILE}.")
@no_commits
@path_option
@json_option
@handle_errors
def matrix(write: bool, no_commits: bool, root: Path, as_json: bool) -> None:
    """Show the traceability matrix (and store it with --write)."""
    project, m = _matrix(root, no_commits)
    if as_json:
        emit(
            [
                {
                    "id": e.id,
                    "title": e.title,
                    "status": e.status,
                    **{d: [x.model_dump(exclude_none=True) for x in getattr(e, d)] for d in _DIMS},
                }
                for e in m.entries.values()
            ],
            as_json=True,
        )
    else:
        emit(
            [
                {
                    "id": e.id,
                    "title": e.title,
                    **{
                        d: [x.via if d == "tasks" else x.where for x in getattr(e, d)]
                        for d in _DIMS
                    },
                    "status": e.status,
                }
                for e in m.entries.values()
            ],
            as_json=False,
            title="Traceability matrix",
            columns=["id", "title", *_DIMS, "status"],
        )
    if write:
        written = write_matrix(project.root, m)
        click.echo(f"{'wrote' if written else 'unchanged:'} {MATRIX_FILE}", err=True)


@trace.command("gaps")
@require_option
@no_commits
@path_option
@json_option
@handle_errors
def gaps(require: str, no_commits: bool, root: Path, as_json: bool) -> None:
    """Requirements missing a design, code or test link, and references to unknown IDs."""
    _, m = _matrix(root, no_commits)
    found = find_gaps(m, _require(require))
    emit(
        [g.model_dump() for g in found],
        as_json=as_json,
        title="Traceability gaps",
        columns=["id", "kind", "missing", "file", "line", "message"],
    )


@trace.command("coverage")
@no_commits
@path_option
@json_option
@handle_errors
def coverage_(no_commits: bool, root: Path, as_json: bool) -> None:
    """Percentage of requirements with design, task, code, test and commit links."""
    _, m = _matrix(root, no_commits)
    emit(coverage(m), as_json=as_json, title="Traceability coverage (%)")


@trace.command("impact")
@click.argument("requirement")
@no_commits
@path_option
@json_option
@handle_errors
def impact_(requirement: str, no_commits: bool, root: Path, as_json: bool) -> None:
    """What a change to REQUIREMENT touches: design, tasks, code, tests, commits."""
    project, m = _matrix(root, no_commits)
    emit(impact(project, m, requirement), as_json=as_json, title=f"Impact of {requirement}")


@trace.command("check")
@require_option
@no_commits
@path_option
@handle_errors
def check(require: str, no_commits: bool, root: Path) -> None:
    """Exit 1 when any requirement has a gap (for CI: block the merge)."""
    _, m = _matrix(root, no_commits)
    found = find_gaps(m, _require(require))
    for gap in found:
        where = f"{gap.file}:{gap.line}: " if gap.file else ""
        click.echo(f"{where}gap: {gap.message}")
    dims = _require(require)
    summary = (
        f"{len(m.entries)} requirement(s), {traced_percent(m, dims)}% traced "
        f"({', '.join(dims)}), {len(found)} gap(s)"
    )
    if found:
        click.echo(f"FAIL: {summary}", err=True)
        raise SystemExit(1)
    click.echo(f"OK: {summary}")


@trace.command("report")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html"]),
    default="md",
    show_default=True,
    help="Markdown or a standalone HTML page.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@require_option
@no_commits
@path_option
@handle_errors
def report(fmt: str, output: Path | None, require: str, no_commits: bool, root: Path) -> None:
    """A Markdown or HTML report: coverage, matrix and gaps."""
    from musubi.sdd.trace.report import render_html, render_markdown

    project, m = _matrix(root, no_commits)
    found = find_gaps(m, _require(require))
    name = project.steering.project.name if project.steering.project else None
    title = f"Traceability Report — {name}" if name else "Traceability Report"
    text = (render_html if fmt == "html" else render_markdown)(m, found, title=title)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(output, text)
        click.echo(f"wrote {relpath(output, project.root)}", err=True)
