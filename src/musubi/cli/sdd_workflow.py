"""``musubi workflow start|status|advance|block|unblock``."""

from __future__ import annotations

from pathlib import Path

import click

from musubi.cli.output import emit, json_option
from musubi.cli.sdd_common import handle_errors, path_option
from musubi.errors import Conflict
from musubi.sdd import workflow as wf

__all__ = ["workflow"]


@click.group()
def workflow() -> None:
    """Workflow stages, modes, blockers and transition history (storage/workflow-state.yml)."""


@workflow.command("start")
@click.argument("feature")
@click.option(
    "--mode",
    type=click.Choice(list(wf.MODES)),
    default="medium",
    show_default=True,
    help="small skips design and tasks; large adds steering and review.",
)
@click.option("--force", is_flag=True, help="Replace an unfinished workflow.")
@path_option
@handle_errors
def start(feature: str, mode: str, force: bool, root: Path) -> None:
    """Start a workflow for FEATURE."""
    state = wf.start(root, feature, mode, force=force)
    click.echo(
        f"{feature}: {mode} mode, at {state['currentStage']} "
        f"({' -> '.join(wf.MODES[mode])} -> done)"
    )


@workflow.command("status")
@path_option
@json_option
@handle_errors
def status(root: Path, as_json: bool) -> None:
    """Where the workflow stands: stages, open blockers, allowed next stages."""
    info = wf.status(root)
    if as_json:
        emit(info, as_json=True)
        return
    click.echo(
        f"feature {info['feature']} · mode {info['mode']} · {info['status']} · "
        f"stage {info['currentStage']}"
    )
    emit(
        info["stages"],
        as_json=False,
        columns=["stage", "status", "enteredAt", "completedAt", "attempts"],
    )
    if info["skipped"]:
        click.echo(f"skipped in {info['mode']} mode: {', '.join(info['skipped'])}")
    for b in info["blockers"]:
        click.echo(f"BLOCKED #{b['id']} ({b.get('stage')}): {b['reason']}")
    if info["next"]:
        click.echo(f"next: {', '.join(info['next'])}")


@workflow.command("advance")
@click.option("--to", "to", help="Target stage (default: the next one). Earlier stages loop back.")
@click.option("--notes", default="", help="Recorded in the history.")
@click.option("--force", is_flag=True, help="Advance despite open blockers or failing gates.")
@click.option("--no-gate", is_flag=True, help="Skip the review gate of the current stage.")
@path_option
@handle_errors
def advance(to: str | None, notes: str, force: bool, no_gate: bool, root: Path) -> None:
    """Leave the current stage once its review gate passes."""
    state = wf.load_state(root)
    if state is not None and not no_gate and state.get("status") != "completed":
        from musubi.sdd.gates import run_gates
        from musubi.sdd.project import load_project

        report = run_gates(load_project(root), stage=state.get("currentStage"))
        for check in report.blocking:
            click.echo(f"gate {check.gate}: {check.name}: {check.message}", err=True)
            for finding in check.findings[:10]:
                click.echo(f"  - {finding}", err=True)
        if report.blocking and not force:
            # Everything that stops the advance, not the gate alone: the open blockers too.
            reasons = [f"{len(report.blocking)} critical gate check(s) fail"]
            if blockers := wf.open_blockers(state):
                listed = "; ".join(f"#{b['id']} {b['reason']}" for b in blockers)
                reasons.append(
                    f"{len(blockers)} open blocker(s): {listed} "
                    "(resolve with `musubi workflow unblock <n>`)"
                )
            raise Conflict(
                " and ".join(reasons) + "; fix them, or pass --force (--no-gate skips the gate)"
            )
    state = wf.advance(root, to, notes=notes, force=force)
    if state.get("status") == "completed":
        click.echo(f"{state['feature']}: done")
    else:
        click.echo(f"{state['feature']}: now at {state['currentStage']}")


@workflow.command("block")
@click.argument("reason")
@path_option
@handle_errors
def block(reason: str, root: Path) -> None:
    """Record a blocker on the current stage; advance refuses until it is resolved."""
    b = wf.block(root, reason)
    click.echo(f"blocker #{b['id']} on {b['stage']}: {reason}")


@workflow.command("unblock")
@click.argument("number", type=int)
@path_option
@handle_errors
def unblock(number: int, root: Path) -> None:
    """Resolve blocker NUMBER."""
    wf.unblock(root, number)
    click.echo(f"blocker #{number} resolved")
