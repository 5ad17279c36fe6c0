"""``musubi init``: scaffold steering/, storage/ and AI agent instruction files."""

from __future__ import annotations

from pathlib import Path

import click

from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option
from musubi.sdd.scaffold import AGENTS, scaffold


def _agents(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "all":
        return tuple(AGENTS)
    chosen = tuple(a.strip().lower() for a in value.split(",") if a.strip())
    unknown = [a for a in chosen if a not in AGENTS]
    if unknown:
        raise click.BadParameter(
            f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(AGENTS)} or 'all'"
        )
    return chosen


@click.command()
@path_option
@click.option("--name", help="Project name (default: the folder name).")
@click.option("--description", default="", help="One-line description for project.yml.")
@click.option("--locale", default="en", show_default=True, help="Language of the documents.")
@click.option(
    "--agents",
    "agents",
    default="claude",
    show_default=True,
    help=f"Comma-separated AI agents to write files for: {', '.join(AGENTS)}, or all.",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@json_option
@handle_errors
def init(
    root: Path,
    name: str | None,
    description: str,
    locale: str,
    agents: str,
    force: bool,
    as_json: bool,
) -> None:
    """Scaffold steering/ and storage/ plus instructions for AI coding agents.

    Existing files are kept unless --force is given. In a project that already has MUSUBI
    steering or specs, its layout is kept: only missing agent files are written.
    """
    root.mkdir(parents=True, exist_ok=True)
    result = scaffold(
        root, name=name, description=description, locale=locale, agents=_agents(agents), force=force
    )
    if result.layout is not None:
        click.echo(
            f"existing MUSUBI project ({result.layout.describe()}): its layout is kept; "
            "only missing agent files are written (--force writes the template layout)",
            err=True,
        )
    rows = (
        [{"file": f, "action": "created"} for f in result.created]
        + [{"file": f, "action": "overwritten"} for f in result.overwritten]
        + [{"file": f, "action": "kept (exists)"} for f in result.skipped]
        + [{"file": f, "action": "not created (layout kept)"} for f in result.not_created]
    )
    emit(rows, as_json=as_json, columns=["file", "action"], title="musubi init")
