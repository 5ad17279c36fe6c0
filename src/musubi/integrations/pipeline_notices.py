"""Failed pipelines → chat: a pipeline MUSUBI triggered that completes ``failed`` is
posted as a ``gate_failed`` notice to the project's Slack channel or Teams workflow (the
pipelines MUSUBI triggers are where the review gates run, see deploy/ci-templates/).

The pipeline runs table is the source, read like the run events by
:mod:`.notices`: each chat integration keeps, in ``options["pipelines_since"]``, the
``finished_at`` of the last run it posted (at first, the time the integration was set
up, so history is not replayed). Polled by the server's integrations worker; a crash
between posting and moving the cursor posts that notice again (at least once).
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
from musubi.integrations.pipeline_models import PipelineConfig, PipelineRun
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.tenancy.context import bind_tenant, system_scope

__all__ = ["notice_for_pipeline", "post_pipeline_notices"]

log = logging.getLogger("musubi.integrations")

CHATS = ("slack", "teams")
NOTIFIED = ("failed",)


def notice_for_pipeline(name: str, run: PipelineRun) -> Notice:
    facts = {"pipeline": name, "ref": run.ref, "run": run.external_id}
    if run.web_url:
        facts["url"] = run.web_url
    return Notice(
        "gate_failed",
        f"Pipeline {name} failed",
        f"Run {run.external_id} on {run.ref or 'the default branch'} ended {run.result}.",
        run_id=None,
        facts=facts,
    )


async def post_pipeline_notices(db: Database, box: SecretBox, egress: EgressRules) -> int:
    """Post every chat integration's newly failed pipeline runs; returns those posted."""
    from musubi.integrations.service import open_notifier

    with system_scope():
        async with db.read() as s:
            rows = (
                await s.execute(
                    select(Integration.id, Integration.tenant_id).where(
                        Integration.enabled.is_(True), Integration.kind.in_(CHATS)
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
                raw = row.options.get("pipelines_since") or row.options.get("events_since")
                since = datetime.fromisoformat(str(raw)) if raw else utcnow()
                found = (
                    await s.execute(
                        select(PipelineRun, PipelineConfig.name)
                        .join(PipelineConfig, PipelineConfig.id == PipelineRun.pipeline_id)
                        .where(
                            PipelineConfig.project_id == row.project_id,
                            PipelineRun.state == "completed",
                            PipelineRun.result.in_(NOTIFIED),
                            PipelineRun.finished_at > since,
                        )
                        .order_by(PipelineRun.finished_at)
                        .limit(50)
                    )
                ).all()
            if not found:
                continue
            notifier = open_notifier(row, box, egress.for_tenant(tenant_id))
            try:
                for run, name in found:
                    try:
                        await notifier.notify(notice_for_pipeline(name, run))
                    except MusubiError as exc:
                        log.warning("pipeline notice for %s not posted: %s", run.id, exc.message)
                        break
                    assert run.finished_at is not None
                    since, posted = run.finished_at, posted + 1
            finally:
                await notifier.aclose()
            async with db.transaction() as s:
                fresh = await s.get(Integration, integration_id)
                if fresh is not None:
                    fresh.options = {**fresh.options, "pipelines_since": since.isoformat()}
    return posted
