"""``musubi change init|apply|archive|list``: delta specs in storage/changes/."""

from __future__ import annotations

from pathlib import Path

import click

from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option
from musubi.errors import InvalidInput
from musubi.sdd.changes import (
    apply_change,
    archive_change,
    init_change,
    is_applied,
    load_change,
    parse_delta,
)
from musubi.sdd.files import read_text, relpath
from musubi.sdd.project import load_project

__all__ = ["change"]


@click.group()
def change() -> None:
    """Delta specs: ADDED / MODIFIED / REMOVED / RENAMED requirements."""


@change.command("init")
@click.argument("change_id")
@click.option("--title", help="Title of the change.")
@click.option("--target", help="Requirements file that receives ADDED blocks.")
@path_option
@handle_errors
def init(change_id: str, title: str | None, target: str | None, root: Path) -> None:
    """Create storage/changes/CHANGE_ID.md from the delta template."""
    path = init_change(root, change_id, title=title, target=target)
    click.echo(f"created {relpath(path, root)}")


@change.command("apply")
@click.argument("change_id")
@click.option("--dry-run", is_flag=True, help="Check and report, write nothing.")
@path_option
@json_option
@handle_errors
def apply(change_id: str, dry_run: bool, root: Path, as_json: bool) -> None:
    """Merge the change into the spec files (all checks pass first, or nothing is written)."""
    project = load_project(root)
    delta = load_change(project.root, change_id)
    try:
        result = apply_change(project, delta, dry_run=dry_run)
    except InvalidInput as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None
    data = result.model_dump()
    data["dry_run"] = dry_run
    emit(data, as_json=as_json, title=f"change {change_id}" + (" (dry run)" if dry_run else ""))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@change.command("archive")
@click.argument("change_id")
@click.option("--force", is_flag=True, help="Archive even if it has not been applied.")
@path_option
@handle_errors
def archive(change_id: str, force: bool, root: Path) -> None:
    """Move an applied change to storage/changes/archive/."""
    project = load_project(root)
    delta = load_change(project.root, change_id)
    dest = archive_change(project, delta, force=force)
    click.echo(f"archived to {relpath(dest, project.root)}")


@change.command("list")
@path_option
@json_option
@handle_errors
def list_(root: Path, as_json: bool) -> None:
    """List pending changes and whether each is already applied."""
    project = load_project(root)
    rows = []
    for path in sorted((project.root / "storage" / "changes").glob("*.md")):
        delta = parse_delta(read_text(path), relpath(path, project.root))
        rows.append(
            {
                "id": delta.id,
                "title": delta.title,
                "applied": is_applied(project, delta),
                "added": len(delta.added),
                "modified": len(delta.modified),
                "removed": len(delta.removed),
                "renamed": len(delta.renamed),
            }
        )
    emit(
        rows,
        as_json=as_json,
        title="Changes",
        columns=["id", "title", "applied", "added", "modified", "removed", "renamed"],
    )
