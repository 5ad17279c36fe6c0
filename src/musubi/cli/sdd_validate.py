"""``musubi validate``: review gates and constitution checks."""

from __future__ import annotations

from pathlib import Path

import click

from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option
from musubi.sdd.gates import run_gates
from musubi.sdd.project import load_project

__all__ = ["validate"]

_STAGES = [
    "steering",
    "requirements",
    "design",
    "tasks",
    "implement",
    "validate",
    "review",
    "current",
]


@click.command()
@click.option(
    "--stage",
    type=click.Choice(_STAGES),
    help="Only the gate guarding this stage ('current': the workflow's stage).",
)
@click.option("--verbose", "-v", is_flag=True, help="List every finding, not just counts.")
@path_option
@json_option
@handle_errors
def validate(stage: str | None, verbose: bool, root: Path, as_json: bool) -> None:
    """Run review gates and constitution checks; exit 1 when a critical check fails.

    Levels come from steering/rules/constitution-levels.yml: critical checks block,
    advisory ones warn, flexible ones inform.
    """
    if stage == "current":
        from musubi.sdd.workflow import load_state

        state = load_state(root) or {}
        stage = state.get("currentStage")
    report = run_gates(load_project(root), stage=stage)
    rows = [
        {
            "gate": c.gate,
            "check": c.name,
            "article": c.article,
            "level": c.level,
            "outcome": c.outcome,
            "message": c.message,
            "findings": c.findings,
        }
        for c in report.checks
    ]
    if as_json:
        emit(rows, as_json=True)
    else:
        emit(
            rows,
            as_json=False,
            title="Review gates",
            columns=["gate", "check", "article", "level", "outcome", "message"],
        )
        for c in report.checks:
            if not c.passed and (verbose or c.outcome == "block"):
                for finding in c.findings[: None if verbose else 5]:
                    click.echo(f"  [{c.outcome}] {c.name}: {finding}")
    if report.blocking:
        raise SystemExit(1)
