"""``musubi integrations pipeline …``: a project's CI/CD pipelines, from the server host.

``set`` configures one (secrets from options or ``MUSUBI_PIPELINE_TOKEN`` /
``MUSUBI_PIPELINE_TRIGGER_TOKEN``, never echoed), ``run`` triggers it (``--wait`` follows
it here to its result and exits 1 unless it succeeded), ``status`` shows a run (read from
the service now), ``list`` the project's pipelines with their last run.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.runtime import AppState

__all__ = ["pipeline"]

COLUMNS = ("name", "kind", "target", "ref", "token_hint")
RUN_COLUMNS = ("id", "pipeline", "external_id", "state", "result", "web_url", "error")


def _context(state: AppState) -> tuple[Any, Any]:
    from musubi.context import current_tenant_id
    from musubi.gateway.secrets import SecretBox

    box = SecretBox.load(state.settings.home)
    return box, state.settings.egress_rules.for_tenant(current_tenant_id() or "")


@click.group()
def pipeline() -> None:
    """CI/CD pipelines (Azure Pipelines, GitLab) of a project: configure, run, follow."""


@pipeline.command("list")
@click.argument("project")
@tenant_option
@json_option
def list_cmd(project: str, tenant: str | None, as_json: bool) -> None:
    """List PROJECT's pipelines and the state of each one's last run."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import pipelines

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            rows = await pipelines.list_pipelines(s, await resolve_project(s, project))
            last = await pipelines.last_runs(s, [r.id for r in rows])
            return [pipelines.public_pipeline(r, None, last.get(r.id)) for r in rows]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@pipeline.command("set")
@click.argument("project")
@click.argument("name")
@click.option(
    "--kind",
    required=True,
    help="Service: azure_pipelines, gitlab, or a plugin's (musubi plugins list --kind pipelines).",
)
@click.option("--target", required=True, help="Azure DevOps project, or GitLab project path.")
@click.option("--base-url", default="", help="https://dev.azure.com/<org>; empty for gitlab.com.")
@click.option("--pipeline", "pipeline_id", default="", help="Azure: the pipeline id.")
@click.option("--ref", default="main", show_default=True, help="Branch or tag to run.")
@click.option(
    "--token", envvar="MUSUBI_PIPELINE_TOKEN", default=None, help="Azure PAT / GitLab read_api."
)
@click.option(
    "--trigger-token",
    envvar="MUSUBI_PIPELINE_TRIGGER_TOKEN",
    default=None,
    help="GitLab: the pipeline trigger token.",
)
@tenant_option
@json_option
def set_cmd(
    project: str,
    name: str,
    kind: str,
    target: str,
    base_url: str,
    pipeline_id: str,
    ref: str,
    token: str | None,
    trigger_token: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Configure PROJECT's pipeline NAME (create or replace; omitted secrets are kept)."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import pipelines

    async def work(state: AppState) -> dict[str, Any]:
        box, egress = _context(state)
        async with state.db.transaction() as s:
            row = await pipelines.set_pipeline(
                s,
                box,
                egress,
                project_id=await resolve_project(s, project),
                name=name,
                kind=kind,
                target=target,
                base_url=base_url,
                pipeline=pipeline_id,
                ref=ref,
                token=token,
                trigger_token=trigger_token,
            )
            return pipelines.public_pipeline(row, box)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@pipeline.command("run")
@click.argument("project")
@click.argument("name")
@click.option("--ref", default=None, help="Branch or tag (default: the pipeline's).")
@click.option("--var", "variables", multiple=True, help="NAME=value, repeatable.")
@click.option("--run-id", default=None, help="An orchestrator run to show the result on.")
@click.option("--wait", is_flag=True, help="Follow the run here until it completes.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to --wait.")
@click.option("--poll", default=5.0, show_default=True, help="Seconds between reads.")
@tenant_option
@json_option
def run_cmd(
    project: str,
    name: str,
    ref: str | None,
    variables: tuple[str, ...],
    run_id: str | None,
    wait: bool,
    timeout: float,
    poll: float,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Trigger PROJECT's pipeline NAME; with --wait, exit 1 unless it succeeds."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import pipelines

    given: dict[str, str] = {}
    for item in variables:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=value", param_hint="--var")
        given[key] = value

    async def work(state: AppState) -> dict[str, Any]:
        box, egress = _context(state)
        async with state.db.read() as s:
            row = await pipelines.get_pipeline(s, await resolve_project(s, project), name)
        run = await pipelines.trigger_run(
            state.db, box, egress, row, ref=ref, variables=given, run_id=run_id
        )
        deadline = time.monotonic() + timeout
        while wait and run.state in ("queued", "running") and time.monotonic() < deadline:
            await asyncio.sleep(poll)
            run = await pipelines.refresh_run(state.db, box, egress, row, run.id, poll_s=poll)
        return pipelines.public_run(run, row.name)

    out = run_as_operator(work, tenant=tenant)
    emit(out, as_json=as_json)
    if wait and out["result"] != "succeeded":
        raise SystemExit(1)


@pipeline.command("status")
@click.argument("project")
@click.argument("name")
@click.argument("run", required=False)
@tenant_option
@json_option
def status_cmd(project: str, name: str, run: str | None, tenant: str | None, as_json: bool) -> None:
    """Show RUN of PROJECT's pipeline NAME, read from the service now (default: the
    runs MUSUBI triggered, newest first)."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import pipelines

    async def work(state: AppState) -> list[dict[str, Any]]:
        box, egress = _context(state)
        async with state.db.read() as s:
            row = await pipelines.get_pipeline(s, await resolve_project(s, project), name)
            runs = [] if run else await pipelines.list_runs(s, row)
        if run:
            runs = [await pipelines.refresh_run(state.db, box, egress, row, run)]
        return [pipelines.public_run(r, row.name) for r in runs]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=RUN_COLUMNS)


@pipeline.command("delete")
@click.argument("project")
@click.argument("name")
@tenant_option
@json_option
def delete_cmd(project: str, name: str, tenant: str | None, as_json: bool) -> None:
    """Remove PROJECT's pipeline NAME and the record of its runs (nothing is cancelled)."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import pipelines

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            row = await pipelines.delete_pipeline(s, await resolve_project(s, project), name)
            return pipelines.public_pipeline(row)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)
