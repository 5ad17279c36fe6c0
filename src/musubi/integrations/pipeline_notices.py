"""Failed pipelines → chat: a pipeline MUSUBI triggered that completes ``failed`` is
posted as a ``gate_failed`` notice to the project's Slack channel and Teams workflow
(the pipelines MUSUBI triggers are where the review gates run, see deploy/ci-templates/).

The pipeline runs table is the source. Each server process runs an integrations worker,
so a run's notice is claimed first: one conditional update sets a lease
(``notice_lease``) on a failed run not yet ``notified`` whose lease is free; the worker
that wins posts, then marks the run ``notified``. A process that dies after claiming
leaves the lease to run out, and the notice is posted by the next worker (at least once;
only a crash between posting and marking posts it twice). A project without a chat
integration marks its failed runs notified without posting, so a chat integration set
up later does not replay them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select, update

from musubi.context import bind_tenant, system_scope
from musubi.egress.policy import EgressRules
from musubi.errors import MusubiError
from musubi.gateway.secrets import SecretBox
from musubi.integrations.chat import Notice
from musubi.integrations.models import Integration
from musubi.integrations.pipeline_models import PipelineConfig, PipelineRun
from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["notice_for_pipeline", "post_pipeline_notices"]

log = logging.getLogger("musubi.integrations")

LEASE = timedelta(seconds=60)


def notice_for_pipeline(name: str, run: PipelineRun) -> Notice:
    facts = {"pipeline": name, "ref": run.ref, "run": run.external_id}
    if run.web_url:
        facts["url"] = run.web_url
    return Notice(
        "gate_failed",
        f"Pipeline {name} failed",
        f"Run {run.external_id} on {run.ref or 'the default branch'} ended {run.result}.",
        facts=facts,
    )


async def _claim(db: Database, run_pk: str) -> bool:
    now = utcnow()
    async with db.transaction() as s:
        done = await s.execute(
            update(PipelineRun)
            .where(
                PipelineRun.id == run_pk,
                PipelineRun.notified.is_(False),
                or_(PipelineRun.notice_lease.is_(None), PipelineRun.notice_lease < now),
            )
            .values(notice_lease=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0))


async def post_pipeline_notices(
    db: Database, box: SecretBox, egress: EgressRules, *, limit: int = 50
) -> int:
    """Claim and post the failed runs not yet notified (of every tenant); returns the
    notices posted."""
    from musubi.integrations.service import chat_names, open_notifier

    now = utcnow()
    with system_scope():
        async with db.read() as s:
            due = (
                await s.execute(
                    select(PipelineRun.id, PipelineRun.tenant_id)
                    .where(
                        PipelineRun.state == "completed",
                        PipelineRun.result == "failed",
                        PipelineRun.notified.is_(False),
                        or_(PipelineRun.notice_lease.is_(None), PipelineRun.notice_lease < now),
                    )
                    .order_by(PipelineRun.finished_at)
                    .limit(limit)
                )
            ).all()
    posted = 0
    for run_pk, tenant_id in due:
        with bind_tenant(tenant_id):
            if not await _claim(db, run_pk):
                continue  # another worker has it
            async with db.read() as s:
                run = await s.get(PipelineRun, run_pk)
                config = await s.get(PipelineConfig, run.pipeline_id) if run else None
                chats = (
                    list(
                        await s.scalars(
                            select(Integration).where(
                                Integration.project_id == config.project_id,
                                Integration.kind.in_(chat_names()),
                                Integration.enabled.is_(True),
                            )
                        )
                    )
                    if config is not None
                    else []
                )
            if run is None or config is None:
                continue
            sent = True
            for chat in chats:
                notifier = open_notifier(chat, box, egress.for_tenant(tenant_id))
                try:
                    await notifier.notify(notice_for_pipeline(config.name, run))
                    posted += 1
                except MusubiError as exc:  # left claimed: tried again when the lease ends
                    log.warning("pipeline notice for %s not posted: %s", run_pk, exc.message)
                    sent = False
                finally:
                    await notifier.aclose()
            if sent:
                async with db.transaction() as s:
                    await s.execute(
                        update(PipelineRun)
                        .where(PipelineRun.id == run_pk)
                        .values(notified=True, notice_lease=None)
                        .execution_options(synchronize_session=False)
                    )
    return posted
