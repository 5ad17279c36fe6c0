"""Orchestrator runs → chat notices: the run events of a project (awaiting approval,
succeeded, failed) posted to its Slack channel or Teams workflow.

The events table is the source: each chat integration keeps, in
``options["events_since"]``, the time of the last event it posted (set to "now" when the
integration is created, so history is not replayed). Polled by the server's outbox worker;
a crash between posting and moving the cursor posts that notice again (at least once).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from musubi.egress.policy import EgressRules
from musubi.errors import MusubiError
from musubi.gateway.secrets import SecretBox
from musubi.integrations.chat import Notice
from musubi.integrations.models import Integration
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.tenancy.context import bind_tenant, system_scope

__all__ = ["EVENTS", "notice_for", "post_run_notices"]

log = logging.getLogger("musubi.integrations")

EVENTS = ("run.awaiting_approval", "run.succeeded", "run.failed")


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


async def post_run_notices(db: Database, box: SecretBox, egress: EgressRules) -> int:
    """Post every chat integration's new run events; returns the notices posted."""
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
                raw = row.options.get("events_since")
                since = datetime.fromisoformat(str(raw)) if raw else utcnow()
                events = (
                    await s.execute(
                        select(
                            RunEvent.run_id,
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
                        .order_by(RunEvent.created_at)
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
                for run_id, type_, data, at, feature in events:
                    try:
                        await notifier.notify(notice_for(type_, run_id, feature, dict(data)))
                    except MusubiError as exc:
                        log.warning("chat notice for %s not posted: %s", run_id, exc.message)
                        break
                    since, posted = at, posted + 1
            finally:
                await notifier.aclose()
            async with db.transaction() as s:
                fresh = await s.get(Integration, integration_id)
                if fresh is not None:
                    fresh.options = {**fresh.options, "events_since": since.isoformat()}
    return posted
