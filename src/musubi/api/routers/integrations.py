"""A project's trackers: configuration (secrets write-only), sync, outbox, conflicts; and
the webhook endpoint each tracker calls back (authenticated by the vendor's signature)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from musubi.api.deps import Ctx, app_state, require
from musubi.audit.service import record
from musubi.context import Actor, bind_actor, bind_tenant, system_scope
from musubi.errors import InvalidInput, NotFound, Unauthenticated
from musubi.gateway.secrets import SecretBox
from musubi.integrations import service, sync
from musubi.integrations.models import Integration, IssueLink, OutboxItem, WebhookDelivery
from musubi.integrations.outbox import OutboxWorker
from musubi.integrations.webhooks import BadSignature, read_webhook, verify
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project

router = APIRouter(tags=["integrations"])

Read = Annotated[Ctx, Depends(require("integrations:read", "project"))]
Write = Annotated[Ctx, Depends(require("integrations:write", "project"))]
BASE = "/v1/projects/{project_id}/integrations"


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(
        max_length=200,
        description="JIRA project key, GitHub owner/repo, GitLab group/project, Azure DevOps "
        "project, Slack channel, Teams bot app id; a plugin's tracker says what it takes",
    )
    base_url: str = Field(
        default="",
        max_length=500,
        description="JIRA: https://<site>.atlassian.net (or Data Center URL); GitHub: empty "
        "for api.github.com; a plugin's tracker: what it takes (the sample's: file:///dir). "
        "Private addresses only where MUSUBI_EGRESS_ALLOW allows",
    )
    token: str | None = Field(default=None, description="Write-only. Omitted: keep the stored")
    email: str | None = Field(default=None, description="JIRA Cloud: the token owner's email")
    webhook_secret: str | None = Field(default=None, description="Write-only")
    status_map: dict[str, str] = Field(
        default_factory=dict,
        description="tracker status (or 'open'/'closed') -> spec status, e.g. "
        '{"In Progress": "Implementing", "closed": "Done"}',
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="issue_type (JIRA), rate_per_s, burst"
    )
    enabled: bool = True


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: Literal["local", "remote"]


def box_of(ctx: Ctx) -> SecretBox:
    gateway = ctx.state.gateway
    return gateway.box if gateway is not None else SecretBox.load(ctx.state.settings.home)


def worker_of(request: Request) -> OutboxWorker | None:
    return getattr(request.app.state, "integrations", None)


async def _project(ctx: Ctx, project_id: str, perm: str) -> Project:
    async with ctx.db.read() as s:
        project = await get_one(s, Project, project_id, "project")
    ctx.check(perm, team_id=project.team_id, project_id=project.id)
    return project


async def _integration(
    ctx: Ctx, project_id: str, kind: str, perm: str, among: tuple[str, ...] | None = None
) -> Integration:
    await _project(ctx, project_id, perm)
    async with ctx.db.read() as s:
        return await service.get_integration(s, project_id, kind, among=among)


async def _tracker(ctx: Ctx, project_id: str, kind: str, perm: str) -> Integration:
    return await _integration(ctx, project_id, kind, perm, service.tracker_names())


@router.get(BASE, summary="List a project's trackers (never their secrets)")
async def list_integrations(project_id: str, ctx: Read) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:read")
    async with ctx.db.read() as s:
        rows = await service.list_integrations(s, project_id)
        items = [
            {**service.public_integration(r), "counts": await service.counts(s, r.id)} for r in rows
        ]
    return {"items": items}


@router.put(BASE + "/{kind}", summary="Configure a tracker of the project (create or replace)")
async def set_integration(
    project_id: str, kind: str, body: IntegrationIn, ctx: Write
) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:write")
    box = box_of(ctx)
    egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
    async with ctx.db.transaction() as s:
        row = await service.set_integration(
            s, box, egress, project_id=project_id, kind=kind, **body.model_dump()
        )
        return service.public_integration(row, box)


@router.get(BASE + "/{kind}", summary="A tracker's configuration, state and counts")
async def get_integration(project_id: str, kind: str, ctx: Read) -> dict[str, Any]:
    row = await _integration(ctx, project_id, kind, "integrations:read")
    async with ctx.db.read() as s:
        counts = await service.counts(s, row.id)
    return {**service.public_integration(row, box_of(ctx)), "counts": counts}


@router.delete(BASE + "/{kind}", summary="Remove a tracker (its links and outbox with it)")
async def delete_integration(project_id: str, kind: str, ctx: Write) -> dict[str, Any]:
    await _project(ctx, project_id, "integrations:write")
    async with ctx.db.transaction() as s:
        return service.public_integration(await service.delete_integration(s, project_id, kind))


@router.post(BASE + "/{kind}/sync", summary="Queue the project's changed specs for the tracker")
async def sync_now(project_id: str, kind: str, request: Request, ctx: Write) -> dict[str, Any]:
    row = await _tracker(ctx, project_id, kind, "integrations:write")
    async with ctx.db.read() as s:
        root = await sync.project_root(s, project_id)
        links = list(await s.scalars(select(IssueLink).where(IssueLink.integration_id == row.id)))
    await asyncio.to_thread(sync.write_tracker_keys, root, row, links)
    _, items = await asyncio.to_thread(sync.local_items, root)
    async with ctx.db.transaction() as s:
        result = await sync.plan_sync(s, row, items)
    worker = worker_of(request)
    if worker is not None:
        worker.wake()
    return result.as_dict()


@router.post(
    BASE + "/{kind}/reconcile",
    summary="Read every linked issue now and bring tracker-side changes in",
)
async def reconcile_now(project_id: str, kind: str, ctx: Write) -> dict[str, Any]:
    from musubi.integrations.reconcile import reconcile

    row = await _tracker(ctx, project_id, kind, "integrations:write")
    egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
    outcomes = await reconcile(ctx.db, box_of(ctx), egress, row.id)
    async with ctx.db.transaction() as s:
        await record(s, "integration.reconcile", f"{project_id}/{kind}", detail=outcomes)
    return outcomes


def _outbox_out(row: OutboxItem) -> dict[str, Any]:
    return {
        "id": row.id,
        "item_id": row.item_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_at": row.next_at,
        "error": row.error,
        "created_at": row.created_at,
        "done_at": row.done_at,
    }


@router.get(BASE + "/{kind}/outbox", summary="The tracker's outbox (parked rows show why)")
async def outbox(
    project_id: str, kind: str, ctx: Read, status: str | None = None
) -> dict[str, Any]:
    row = await _tracker(ctx, project_id, kind, "integrations:read")
    async with ctx.db.read() as s:
        query = select(OutboxItem).where(OutboxItem.integration_id == row.id)
        if status:
            query = query.where(OutboxItem.status == status)
        rows = await s.scalars(query.order_by(OutboxItem.created_at).limit(1000))
        return {"items": [_outbox_out(r) for r in rows]}


@router.post(BASE + "/{kind}/outbox/retry", summary="Queue the parked rows again")
async def retry(project_id: str, kind: str, request: Request, ctx: Write) -> dict[str, Any]:
    row = await _tracker(ctx, project_id, kind, "integrations:write")
    async with ctx.db.transaction() as s:
        parked = list(
            await s.scalars(
                select(OutboxItem).where(
                    OutboxItem.integration_id == row.id, OutboxItem.status == "parked"
                )
            )
        )
        for item in parked:
            item.status, item.attempts, item.error = "queued", 0, None
        integration = await s.get(Integration, row.id)
        assert integration is not None
        integration.state, integration.last_error = "ok", None
        await record(s, "integration.retry", f"{project_id}/{kind}", detail={"rows": len(parked)})
    worker = worker_of(request)
    if worker is not None:
        worker.wake()
    return {"requeued": len(parked)}


@router.get(BASE + "/{kind}/conflicts", summary="Items changed on both sides since the last sync")
async def conflicts(project_id: str, kind: str, ctx: Read) -> dict[str, Any]:
    row = await _tracker(ctx, project_id, kind, "integrations:read")
    async with ctx.db.read() as s:
        links = await s.scalars(
            select(IssueLink)
            .where(IssueLink.integration_id == row.id, IssueLink.conflict.is_not(None))
            .order_by(IssueLink.item_id)
        )
        return {"items": [link.conflict for link in links]}


@router.post(
    BASE + "/{kind}/conflicts/{item_id}/resolve",
    summary="Resolve a conflict by keeping MUSUBI's or the tracker's version",
)
async def resolve(
    project_id: str, kind: str, item_id: str, body: ResolveIn, ctx: Write
) -> dict[str, Any]:
    row = await _tracker(ctx, project_id, kind, "integrations:write")
    async with ctx.db.transaction() as s:
        root = await sync.project_root(s, project_id)
        link = await sync.resolve_conflict(s, row, root, item_id, body.keep)
        return {"item_id": link.item_id, "issue_key": link.issue_key, "kept": body.keep}


@router.post("/v1/integrations/{integration_id}/webhook", summary="A tracker's webhook")
async def webhook(integration_id: str, request: Request) -> dict[str, Any]:
    """Public: the vendor's signature (HMAC of the body with the webhook secret) is the
    credential. A bad or missing signature is refused (401) and audited."""
    state = app_state(request)
    body = await request.body()
    with system_scope():
        async with state.db.read() as s:
            found = await s.get(Integration, integration_id)
    if found is None:
        raise NotFound(f"integration {integration_id!r} not found", model=Integration)
    box = state.gateway.box if state.gateway is not None else SecretBox.load(state.settings.home)
    secret = box.open(found.secret).get("webhook_secret")
    client = request.client.host if request.client else None
    actor = Actor(f"webhook:{found.kind}", request_id=request.state.request_id, client_ip=client)
    with bind_tenant(found.tenant_id), bind_actor(actor):
        try:
            verify(found.kind, secret, request.headers, body)
        except BadSignature as exc:
            async with state.db.transaction() as s:
                await record(
                    s,
                    "integration.webhook_rejected",
                    f"{found.project_id}/{found.kind}",
                    outcome="failure",
                    detail={"reason": str(exc)},
                )
            raise Unauthenticated(f"webhook signature refused: {exc}") from exc
        try:
            incoming = read_webhook(found.kind, request.headers, body)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"webhook body is not a {found.kind} event: {exc}") from exc
        try:
            async with state.db.transaction() as s:
                if await s.get(WebhookDelivery, (found.id, incoming.delivery_id)) is not None:
                    return {"delivery": incoming.delivery_id, "result": "duplicate"}
                s.add(WebhookDelivery(integration_id=found.id, delivery_id=incoming.delivery_id))
                await s.flush()
                result = "ignored"
                if incoming.issue is not None:
                    integration = await s.get(Integration, found.id)
                    assert integration is not None
                    root = await sync.project_root(s, found.project_id)
                    result = await sync.apply_remote(s, integration, root, incoming.issue)
        except IntegrityError:
            return {"delivery": incoming.delivery_id, "result": "duplicate"}
    return {"delivery": incoming.delivery_id, "event": incoming.event, "result": result}
