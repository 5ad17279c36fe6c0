"""Posting chat alerts that are no run event (a quota crossing 80 % of its limit, an audit
chain found broken). They are recorded once by whoever finds them (:mod:`musubi.alerts`: a
row of ``chat_alerts``, unique per tenant and ``key``) and posted here once to each chat
integration concerned (:func:`post_alerts`, polled by the server's outbox worker with the
run notices).

Which chats: an alert about a project (a project's or an API key's quota) goes to that
project's chat integrations; one about the whole tenant (a tenant's or team's quota, the
audit chain) to every chat integration of the tenant. An integration gets the alerts
recorded since it was created, not older ones.

Posting once across server processes uses the claim rows of the run notices
(:mod:`musubi.integrations.notices`): ``alert:<id>`` in ``integration_deliveries``
claims the post (taken over by another worker when its ``LEASE`` ran out) and
``alert-posted:<id>`` marks it done; a refused post gives its claim back.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, exists, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.alerts import ChatAlert
from musubi.context import bind_tenant, system_scope
from musubi.egress.policy import EgressRules
from musubi.errors import MusubiError
from musubi.gateway.secrets import SecretBox
from musubi.integrations.chat import Notice
from musubi.integrations.models import Integration, WebhookDelivery
from musubi.integrations.notices import claim_post
from musubi.storage.database import Database

__all__ = ["post_alerts"]

log = logging.getLogger("musubi.integrations")

CLAIM, POSTED = "alert:", "alert-posted:"


async def _claim(db: Database, integration_id: str, alert_id: str) -> bool:
    """Claim the post of ``alert_id`` to this integration (done once its ``alert-posted``
    row exists)."""

    async def posted(s: AsyncSession) -> bool:
        return await s.get(WebhookDelivery, (integration_id, POSTED + alert_id)) is not None

    return await claim_post(db, integration_id, CLAIM + alert_id, posted)


async def _settle(db: Database, integration_id: str, alert_id: str, posted: bool) -> None:
    """Mark a post done, or give its claim back after a refusal."""
    async with db.transaction() as s:
        if posted:
            s.add(WebhookDelivery(integration_id=integration_id, delivery_id=POSTED + alert_id))
        else:
            await s.execute(
                delete(WebhookDelivery)
                .where(
                    WebhookDelivery.integration_id == integration_id,
                    WebhookDelivery.delivery_id == CLAIM + alert_id,
                )
                .execution_options(synchronize_session=False)
            )


async def post_alerts(db: Database, box: SecretBox, egress: EgressRules) -> int:
    """Post every chat integration's alerts not posted yet, each claimed first (so two
    server processes post it once); returns the notices posted."""
    from musubi.integrations.service import chat_names, open_notifier

    with system_scope():
        async with db.read() as s:
            rows = (
                await s.execute(
                    select(Integration.id, Integration.tenant_id)
                    .where(Integration.enabled.is_(True), Integration.kind.in_(chat_names()))
                    .where(exists().where(ChatAlert.tenant_id == Integration.tenant_id))
                )
            ).all()
    posted = 0
    for integration_id, tenant_id in rows:
        with bind_tenant(tenant_id):
            async with db.read() as s:
                row = await s.get(Integration, integration_id)
                if row is None:
                    continue
                done = exists().where(
                    WebhookDelivery.integration_id == integration_id,
                    WebhookDelivery.delivery_id == literal(POSTED) + ChatAlert.id,
                )
                alerts = list(
                    (
                        await s.scalars(
                            select(ChatAlert)
                            .where(
                                ChatAlert.created_at >= row.created_at,
                                or_(
                                    ChatAlert.project_id.is_(None),
                                    ChatAlert.project_id == row.project_id,
                                ),
                                ~done,
                            )
                            .order_by(ChatAlert.created_at, ChatAlert.id)
                            .limit(50)
                        )
                    ).all()
                )
            if not alerts:
                continue
            try:  # refused by the egress policy, or its plugin uninstalled: skipped, logged
                notifier = open_notifier(row, box, egress.for_tenant(tenant_id))
            except MusubiError as exc:
                log.warning("chat alerts of %s not posted: %s", integration_id, exc.message)
                continue
            try:
                for alert in alerts:
                    if not await _claim(db, integration_id, alert.id):
                        continue  # another worker is posting it, or posted it
                    notice = Notice(alert.kind, alert.title, alert.text, facts=dict(alert.facts))
                    try:
                        await notifier.notify(notice)
                    except MusubiError as exc:
                        log.warning("chat alert %s not posted: %s", alert.id, exc.message)
                        await _settle(db, integration_id, alert.id, posted=False)
                        break
                    await _settle(db, integration_id, alert.id, posted=True)
                    posted += 1
            finally:
                await notifier.aclose()
    return posted
