"""Orchestrator runs → chat notices: the run events of a project (awaiting approval,
succeeded, failed) posted to its Slack channel or Teams workflow.

The events table is the source: each chat integration keeps, in
``options["events_since"]``, the time of the last event it posted (set to "now" when the
integration is created, so history is not replayed). Polled by the server's outbox worker.

Each server process runs that worker, so each (event, integration) notice is claimed
before it is posted: the claim is a row of ``integration_deliveries`` (the table that
keeps the webhooks already applied, primary key integration and delivery id) whose id is
``run-notice:<run>:<seq>``, inserted in its own transaction; the worker whose insert
wins posts, then moves the cursor past the event. A worker that finds the next event
claimed by another stops there for this round (the other is posting this channel's
notices, in order). A refused post gives its claim back, so the next round tries again.
A worker that dies after claiming leaves its claim to run out (``LEASE``), and the next
worker takes it over unless the cursor shows the notice posted: at least once, and twice
only when a process dies between posting and moving the cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.context import bind_tenant, system_scope
from musubi.egress.policy import EgressRules
from musubi.errors import MusubiError
from musubi.gateway.secrets import SecretBox
from musubi.integrations.chat import Notice
from musubi.integrations.models import Integration, WebhookDelivery
from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["EVENTS", "LEASE", "notice_for", "post_run_notices"]

log = logging.getLogger("musubi.integrations")

EVENTS = ("run.awaiting_approval", "run.succeeded", "run.failed")
LEASE = timedelta(seconds=60)  # how long a claim holds before another worker may take it
CLAIM = "run-notice:"  # the prefix of a claim's delivery id


def notice_for(event: str, run_id: str, feature: str, data: dict[str, object]) -> Notice:
    if event == "run.awaiting_approval":
        return Notice(
            "approval_needed",
            f"Run {run_id} awaits approval",
            f"The stage is done for *{feature}*; the next is {data.get('next', '?')}.",
            run_id=run_id,
        )
    if event == "run.succeeded":
        facts = {"cost (USD)": str(data.get("cost", ""))}
        return Notice(
            "run_finished", f"Run {run_id} finished", f"*{feature}* is done.", facts=facts
        )
    return Notice(
        "run_finished",
        f"Run {run_id} failed",
        str(data.get("error") or "The run failed."),
        facts={"feature": feature},
    )


def _cursor(row: Integration) -> datetime | None:
    raw = row.options.get("events_since")
    return datetime.fromisoformat(str(raw)) if raw else None


async def claim_post(
    db: Database,
    integration_id: str,
    key: str,
    posted: Callable[[AsyncSession], Awaitable[bool]],
) -> bool:
    """Claim the post ``key`` to this integration: ``True`` when this worker should post
    it; ``False`` when another worker holds a live claim or ``posted`` says it was done.
    The first insert of the claim row wins; a claim older than ``LEASE`` (its worker
    died) is taken over with one conditional UPDATE."""
    now = utcnow()
    try:
        async with db.transaction() as s:
            s.add(WebhookDelivery(integration_id=integration_id, delivery_id=key, received_at=now))
            await s.flush()
        return True
    except IntegrityError:
        pass  # claimed before: by a live worker, by one that died, or posted
    async with db.transaction() as s:
        if await posted(s):
            return False
        taken = await s.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.integration_id == integration_id,
                WebhookDelivery.delivery_id == key,
                WebhookDelivery.received_at < now - LEASE,
            )
            .values(received_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(taken, "rowcount", 0))


async def _claim(db: Database, integration_id: str, run_id: str, seq: int, at: datetime) -> bool:
    """Claim the notice of event ``(run_id, seq)`` for this integration."""

    async def posted(s: AsyncSession) -> bool:
        row = await s.get(Integration, integration_id, with_for_update=True)
        cursor = _cursor(row) if row is not None else None
        # posted (the cursor moved past it), or the integration is gone
        return row is None or (cursor is not None and cursor >= at)

    return await claim_post(db, integration_id, f"{CLAIM}{run_id}:{seq}", posted)


async def _release(db: Database, integration_id: str, run_id: str, seq: int) -> None:
    """Give a claim back after a refused post, so the next round tries again."""
    async with db.transaction() as s:
        await s.execute(
            delete(WebhookDelivery)
            .where(
                WebhookDelivery.integration_id == integration_id,
                WebhookDelivery.delivery_id == f"{CLAIM}{run_id}:{seq}",
            )
            .execution_options(synchronize_session=False)
        )


async def _posted(db: Database, integration_id: str, at: datetime) -> None:
    """Move the cursor past a posted event (never backwards)."""
    async with db.transaction() as s:
        row = await s.get(Integration, integration_id, with_for_update=True)
        if row is None:
            return
        cursor = _cursor(row)
        if cursor is None or at > cursor:
            row.options = {**row.options, "events_since": at.isoformat()}


async def post_run_notices(db: Database, box: SecretBox, egress: EgressRules) -> int:
    """Post every chat integration's new run events, each claimed first (so two server
    processes post it once); returns the notices posted."""
    from musubi.integrations.service import chat_names, open_notifier
    from musubi.orchestrator.models import Run, RunEvent

    with system_scope():
        async with db.read() as s:
            rows = (
                await s.execute(
                    select(Integration.id, Integration.tenant_id).where(
                        Integration.enabled.is_(True), Integration.kind.in_(chat_names())
                    )
                )
            ).all()
    posted = 0
    for integration_id, tenant_id in rows:
        with bind_tenant(tenant_id):
            async with db.read() as s:
                row = await s.get(Integration, integration_id)
                if row is None:
                    continue
                since = _cursor(row) or utcnow()
                events = (
                    await s.execute(
                        select(
                            RunEvent.run_id,
                            RunEvent.seq,
                            RunEvent.type,
                            RunEvent.data,
                            RunEvent.created_at,
                            Run.feature,
                        )
                        .join(Run, Run.id == RunEvent.run_id)
                        .where(
                            Run.project_id == row.project_id,
                            RunEvent.type.in_(EVENTS),
                            RunEvent.created_at > since,
                        )
                        .order_by(RunEvent.created_at, RunEvent.run_id, RunEvent.seq)
                        .limit(50)
                    )
                ).all()
            if not events:
                continue
            try:  # refused by the egress policy, or its plugin uninstalled: skipped, logged
                notifier = open_notifier(row, box, egress.for_tenant(tenant_id))
            except MusubiError as exc:
                log.warning("chat notices of %s not posted: %s", integration_id, exc.message)
                continue
            try:
                for run_id, seq, type_, data, at, feature in events:
                    if not await _claim(db, integration_id, run_id, seq, at):
                        break  # another worker is posting this channel's notices
                    try:
                        await notifier.notify(notice_for(type_, run_id, feature, dict(data)))
                    except MusubiError as exc:
                        log.warning("chat notice for %s not posted: %s", run_id, exc.message)
                        await _release(db, integration_id, run_id, seq)
                        break
                    await _posted(db, integration_id, at)
                    posted += 1
            finally:
                await notifier.aclose()
    return posted
