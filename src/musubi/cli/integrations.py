"""``musubi integrations …``: a project's trackers, from the server host.

``set`` configures one (secrets from options or ``MUSUBI_TRACKER_TOKEN`` /
``MUSUBI_TRACKER_WEBHOOK_SECRET``, never echoed), ``sync`` queues changed specs and with
``--wait`` delivers them here, ``deliver`` drains every tenant's outbox (what the
server's worker does continuously), ``outbox``/``conflicts``/``resolve``/``retry`` show and
fix what is stuck.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.integrations.models import Integration
    from musubi.runtime import AppState

__all__ = ["integrations"]

COLUMNS = ("kind", "target", "base_url", "state", "last_error", "token_hint")


def _box(state: AppState) -> Any:
    from musubi.gateway.secrets import SecretBox

    return SecretBox.load(state.settings.home)


async def _integration(state: AppState, project: str, kind: str) -> tuple[str, Integration]:
    """PROJECT's KIND tracker (a chat integration is refused: these commands sync issues)."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import service

    async with state.db.read() as s:
        project_id = await resolve_project(s, project)
        row = await service.get_integration(s, project_id, kind, among=service.tracker_names())
        return project_id, row


@click.group()
def integrations() -> None:
    """Trackers (JIRA, GitHub) of a project: configure, sync, outbox, conflicts."""


@integrations.command("list")
@click.argument("project")
@tenant_option
@json_option
def list_cmd(project: str, tenant: str | None, as_json: bool) -> None:
    """List PROJECT's trackers with their state and outbox counts."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            rows = await service.list_integrations(s, await resolve_project(s, project))
            return [
                {**service.public_integration(r), "counts": await service.counts(s, r.id)}
                for r in rows
            ]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@integrations.command("set")
@click.argument("project")
@click.argument("kind")
@click.option(
    "--target",
    required=True,
    help="JIRA project key, GitHub owner/repo, GitLab group/project, Azure DevOps project, "
    "Slack channel, or what a plugin tracker names.",
)
@click.option(
    "--base-url", default="", help="Tracker URL (JIRA site, …); empty for the tracker's default."
)
@click.option("--token", envvar="MUSUBI_TRACKER_TOKEN", default=None, help="API token.")
@click.option("--email", default=None, help="JIRA Cloud: the token owner's email.")
@click.option(
    "--webhook-secret", envvar="MUSUBI_TRACKER_WEBHOOK_SECRET", default=None, help="HMAC secret."
)
@click.option("--status-map", default="{}", help='JSON, e.g. \'{"Done": "Done"}\'.')
@click.option("--option", "options", multiple=True, help="name=value (issue_type, rate_per_s).")
@tenant_option
@json_option
def set_cmd(
    project: str,
    kind: str,
    target: str,
    base_url: str,
    token: str | None,
    email: str | None,
    webhook_secret: str | None,
    status_map: str,
    options: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
) -> None:
    """Configure PROJECT's KIND tracker (create or replace; omitted secrets are kept).

    KIND is an installed tracker (jira, github, gitlab, azure_devops, or a plugin's: see
    `musubi plugins list --kind trackers`) or a chat (slack, teams)."""
    from musubi.cli.projects import resolve_project
    from musubi.integrations import service

    try:
        mapping = json.loads(status_map)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--status-map") from exc
    opts: dict[str, Any] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            raise click.BadParameter(f"{option!r} is not name=value", param_hint="--option")
        opts[name] = float(value) if name in ("rate_per_s",) else value

    async def work(state: AppState) -> dict[str, Any]:
        from musubi.context import current_tenant_id

        box = _box(state)
        egress = state.settings.egress_rules.for_tenant(current_tenant_id() or "")
        async with state.db.transaction() as s:
            row = await service.set_integration(
                s,
                box,
                egress,
                project_id=await resolve_project(s, project),
                kind=kind,
                target=target,
                base_url=base_url,
                token=token,
                email=email,
                webhook_secret=webhook_secret,
                status_map=mapping,
                options=opts,
            )
            return service.public_integration(row, box)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@integrations.command("sync")
@click.argument("project")
@click.argument("kind")
@click.option("--wait", is_flag=True, help="Deliver here until the outbox is empty.")
@tenant_option
@json_option
def sync_cmd(project: str, kind: str, wait: bool, tenant: str | None, as_json: bool) -> None:
    """Queue PROJECT's changed requirements and tasks for its KIND tracker."""
    from sqlalchemy import select

    from musubi.integrations import sync
    from musubi.integrations.models import IssueLink

    async def work(state: AppState) -> dict[str, Any]:
        project_id, row = await _integration(state, project, kind)
        async with state.db.read() as s:
            root = await sync.project_root(s, project_id)
            links = list(
                await s.scalars(select(IssueLink).where(IssueLink.integration_id == row.id))
            )
        sync.write_tracker_keys(root, row, links)
        _, items = sync.local_items(root)
        async with state.db.transaction() as s:
            result = sync.SyncResult.as_dict(await sync.plan_sync(s, row, items))
        if wait:
            result["delivered"] = await _drain(state)
        return result

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


async def _drain(state: AppState, lease_s: float = 60.0) -> int:
    from musubi.context import system_scope
    from musubi.integrations.outbox import OutboxWorker

    worker = OutboxWorker(
        state.db, _box(state), state.settings.egress_rules, poll_s=0.5, lease_s=lease_s
    )
    try:
        with system_scope():
            return await worker.drain()
    finally:
        await worker.close()


@integrations.command("deliver")
@click.option(
    "--lease-s",
    default=60.0,
    show_default=True,
    help="How long a claimed row stays this process's; a dead process's rows are "
    "claimed again after it.",
)
@json_option
def deliver_cmd(lease_s: float, as_json: bool) -> None:
    """Deliver every tenant's due outbox rows, waiting out backoffs, until none is left."""

    async def work(state: AppState) -> dict[str, Any]:
        return {"delivered": await _drain(state, lease_s)}

    emit(run_as_operator(work, system=True), as_json=as_json)


@integrations.command("outbox")
@click.argument("project")
@click.argument("kind")
@click.option("--status", default=None, help="queued, running, done, parked or conflict.")
@tenant_option
@json_option
def outbox_cmd(
    project: str, kind: str, status: str | None, tenant: str | None, as_json: bool
) -> None:
    """Show the outbox of PROJECT's KIND tracker (parked rows with their error)."""
    from sqlalchemy import select

    from musubi.integrations.models import OutboxItem

    async def work(state: AppState) -> list[dict[str, Any]]:
        _, row = await _integration(state, project, kind)
        async with state.db.read() as s:
            query = select(OutboxItem).where(OutboxItem.integration_id == row.id)
            if status:
                query = query.where(OutboxItem.status == status)
            rows = await s.scalars(query.order_by(OutboxItem.created_at))
            return [
                {"item_id": r.item_id, "status": r.status, "attempts": r.attempts, "error": r.error}
                for r in rows
            ]

    emit(
        run_as_operator(work, tenant=tenant),
        as_json=as_json,
        columns=["item_id", "status", "attempts", "error"],
    )


@integrations.command("conflicts")
@click.argument("project")
@click.argument("kind")
@tenant_option
@json_option
def conflicts_cmd(project: str, kind: str, tenant: str | None, as_json: bool) -> None:
    """Items changed both in MUSUBI and on the tracker since the last sync."""
    from sqlalchemy import select

    from musubi.integrations.models import IssueLink

    async def work(state: AppState) -> list[dict[str, Any]]:
        _, row = await _integration(state, project, kind)
        async with state.db.read() as s:
            links = await s.scalars(
                select(IssueLink).where(
                    IssueLink.integration_id == row.id, IssueLink.conflict.is_not(None)
                )
            )
            out = []
            for link in links:
                c = link.conflict or {}
                out.append(
                    {
                        "item_id": link.item_id,
                        "issue_key": link.issue_key,
                        "local_title": c.get("local", {}).get("title"),
                        "remote_title": c.get("remote", {}).get("title"),
                        "remote_status": c.get("remote", {}).get("status"),
                    }
                )
            return out

    emit(
        run_as_operator(work, tenant=tenant),
        as_json=as_json,
        columns=["item_id", "issue_key", "local_title", "remote_title", "remote_status"],
    )


@integrations.command("resolve")
@click.argument("project")
@click.argument("kind")
@click.argument("item_id")
@click.option(
    "--keep",
    type=click.Choice(["local", "remote"]),
    required=True,
    help="Keep MUSUBI's version (local) or the tracker's (remote).",
)
@tenant_option
@json_option
def resolve_cmd(
    project: str, kind: str, item_id: str, keep: str, tenant: str | None, as_json: bool
) -> None:
    """End ITEM_ID's conflict, keeping MUSUBI's (local) or the tracker's (remote) version."""
    from musubi.integrations import sync

    async def work(state: AppState) -> dict[str, Any]:
        project_id, row = await _integration(state, project, kind)
        async with state.db.transaction() as s:
            root = await sync.project_root(s, project_id)
            link = await sync.resolve_conflict(s, row, root, item_id, keep)
            return {"item_id": link.item_id, "issue_key": link.issue_key, "kept": keep}

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@integrations.command("reconcile")
@click.argument("project")
@click.argument("kind")
@tenant_option
@json_option
def reconcile_cmd(project: str, kind: str, tenant: str | None, as_json: bool) -> None:
    """Read every linked issue of PROJECT's KIND tracker and bring missed changes in."""
    from musubi.context import current_tenant_id
    from musubi.integrations.reconcile import reconcile

    async def work(state: AppState) -> dict[str, Any]:
        _, row = await _integration(state, project, kind)
        egress = state.settings.egress_rules.for_tenant(current_tenant_id() or "")
        return await reconcile(state.db, _box(state), egress, row.id)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


def _add_pipelines() -> None:
    from musubi.cli.pipelines import pipeline

    integrations.add_command(pipeline)


_add_pipelines()
