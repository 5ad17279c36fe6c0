"""Chat integrations: a test notice from the API, and the endpoints Slack and Teams call
(public: Slack's v0 signature and the Bot Framework's JWT are the credentials; a refused
one is answered 401 and audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, app_state, require
from musubi.api.routers.integrations import BASE, _integration, box_of
from musubi.audit.service import record
from musubi.context import Actor, bind_actor, bind_tenant, system_scope
from musubi.errors import InvalidInput, NotFound, Unauthenticated
from musubi.gateway.secrets import SecretBox
from musubi.integrations import service
from musubi.integrations.chat import Notice, run_command
from musubi.integrations.models import Integration
from musubi.storage.database import Database
from musubi.tenancy.models import Project

router = APIRouter(tags=["integrations"])

Write = Annotated[Ctx, Depends(require("integrations:write", "project"))]


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["run_finished", "gate_failed", "approval_needed", "quota_80", "audit_failed"]
    title: str = Field(max_length=150)
    text: str = Field(default="", max_length=3000)
    run_id: str | None = Field(default=None, max_length=40)
    facts: dict[str, str] = Field(default_factory=dict)


@router.post(BASE + "/{kind}/notify", summary="Post a notice to the project's chat channel")
async def notify(project_id: str, kind: str, body: NoticeIn, ctx: Write) -> dict[str, Any]:
    row = await _integration(ctx, project_id, kind, "integrations:write", service.chat_names())
    egress = ctx.state.settings.egress_rules.for_tenant(ctx.tenant_id)
    notifier = service.open_notifier(row, box_of(ctx), egress)
    try:
        await notifier.notify(Notice(**body.model_dump()))
    finally:
        await notifier.aclose()
    async with ctx.db.transaction() as s:
        await record(s, "integration.notify", f"{project_id}/{kind}", detail={"kind": body.kind})
    return {"posted": True}


async def _chat(request: Request, integration_id: str, kind: str) -> tuple[Integration, SecretBox]:
    state = app_state(request)
    with system_scope():
        async with state.db.read() as s:
            found = await s.get(Integration, integration_id)
    if found is None or found.kind != kind:
        raise NotFound(f"{kind} integration {integration_id!r} not found", model=Integration)
    box = state.gateway.box if state.gateway is not None else SecretBox.load(state.settings.home)
    return found, box


async def _refused(db: Database, row: Integration, reason: str) -> Unauthenticated:
    async with db.transaction() as s:
        await record(
            s,
            "integration.webhook_rejected",
            f"{row.project_id}/{row.kind}",
            outcome="failure",
            detail={"reason": reason},
        )
    return Unauthenticated(f"{row.kind} request refused: {reason}")


async def _root(db: Database, project_id: str) -> Path | None:
    async with db.read() as s:
        project = await s.get(Project, project_id)
    return Path(project.repo_path) if project is not None and project.repo_path else None


def _resume(request: Request, tenant_id: str, run_id: str | None) -> None:
    orch = getattr(request.app.state, "orchestrator", None)
    if run_id and orch is not None:
        orch.submit(tenant_id, run_id)


@router.post("/v1/integrations/{integration_id}/slack/commands", summary="Slack /musubi")
async def slack_command(integration_id: str, request: Request) -> dict[str, Any]:
    from musubi.integrations.slack import SlackSignatureError, parse_command, verify_slack

    row, box = await _chat(request, integration_id, "slack")
    db, body = app_state(request).db, await request.body()
    with bind_tenant(row.tenant_id), bind_actor(Actor("slack")):
        try:
            verify_slack(box.open(row.secret).get("webhook_secret"), request.headers, body)
        except SlackSignatureError as exc:
            raise await _refused(db, row, str(exc)) from exc
        text, user = parse_command(body)
        result = await run_command(db, row, text, user, root=await _root(db, row.project_id))
    _resume(request, row.tenant_id, result.run_id)
    return {"response_type": "ephemeral", "text": result.text}


@router.post("/v1/integrations/{integration_id}/slack/interactions", summary="Slack buttons")
async def slack_interaction(integration_id: str, request: Request) -> dict[str, Any]:
    from musubi.integrations.slack import (
        APPROVE,
        REJECT,
        SlackSignatureError,
        parse_interaction,
        verify_slack,
    )

    row, box = await _chat(request, integration_id, "slack")
    db, body = app_state(request).db, await request.body()
    with bind_tenant(row.tenant_id), bind_actor(Actor("slack")):
        try:
            verify_slack(box.open(row.secret).get("webhook_secret"), request.headers, body)
        except SlackSignatureError as exc:
            raise await _refused(db, row, str(exc)) from exc
        try:
            action, run_id, user = parse_interaction(body)
        except (ValueError, AttributeError, IndexError) as exc:
            raise InvalidInput(f"not a Slack interaction payload: {exc}") from exc
        verbs = {APPROVE: "approve", REJECT: "reject"}
        if action not in verbs:
            raise InvalidInput(f"unknown action {action!r}", field="actions")
        result = await run_command(db, row, f"{verbs[action]} {run_id}", user, root=None)
    _resume(request, row.tenant_id, result.run_id if action == APPROVE else None)
    return {"response_type": "ephemeral", "replace_original": False, "text": result.text}


@router.post("/v1/integrations/{integration_id}/teams/messages", summary="Teams bot messages")
async def teams_message(integration_id: str, request: Request) -> dict[str, Any]:
    from musubi.egress.clients import egress_client
    from musubi.integrations.teams import OPENID_URL, BotTokenError, BotTokenValidator

    row, _ = await _chat(request, integration_id, "teams")
    state = app_state(request)
    try:
        activity: dict[str, Any] = await request.json()
    except ValueError as exc:
        raise InvalidInput(f"the body is not a Bot Framework activity: {exc}") from exc
    if not isinstance(activity, dict):
        raise InvalidInput("the body is not a Bot Framework activity (an object)")
    with bind_tenant(row.tenant_id), bind_actor(Actor("teams")):
        openid = str(row.options.get("openid_url") or OPENID_URL)
        egress = state.settings.egress_rules.for_tenant(row.tenant_id)
        async with egress_client(egress, timeout=10.0) as client:
            validator = BotTokenValidator(client, openid)
            try:
                await validator.validate(
                    request.headers.get("authorization"),
                    row.target,
                    activity.get("serviceUrl", ""),
                )
            except BotTokenError as exc:
                raise await _refused(state.db, row, str(exc)) from exc
        value = activity.get("value") or {}
        text = (
            f"{value.get('musubi')} {value.get('run')}"
            if isinstance(value, dict) and value.get("musubi")
            else str(activity.get("text") or "")
        )
        sender = activity.get("from") or {}
        user = str(sender.get("aadObjectId") or sender.get("id") or "")
        result = await run_command(
            state.db, row, text, user, root=await _root(state.db, row.project_id)
        )
    _resume(request, row.tenant_id, result.run_id if text.startswith("approve") else None)
    return {"type": "message", "text": result.text}
