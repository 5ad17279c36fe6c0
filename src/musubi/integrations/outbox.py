"""Delivering the outbox: the rows are the queue.

The same design as the batch job queue (:class:`musubi.batch.queue.DatabaseQueue`):
workers claim due rows with a lease (``SKIP LOCKED`` on PostgreSQL) and a row whose lease
ran out (its process died, SIGKILL included) is claimed again, through the same
:class:`musubi.storage.leases.Leases`. That queue's rows are
batch line ranges with a foreign key to their batch, so the outbox keeps its own table
and claims it the same way rather than bending the batch tables.

A redelivery is harmless: a row's first attempt creates the issue; any later attempt
first looks for an issue already carrying the item's label (a previous attempt may have
created it and died before recording the link), so every item ends up on the tracker
exactly once. Only one row per item is in flight at a time.

Failures: 429 and secondary limits wait for ``Retry-After``; 5xx, timeouts and refused
connections back off exponentially; after ``max_attempts``, or at once for a refusal
(401, 404, a required field), the row is ``parked`` with its error, and a refusal puts
the integration's ``state`` to ``error`` so the API and CLI show why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import aliased

from musubi.context import bind_tenant, system_scope
from musubi.egress.policy import EgressRules
from musubi.gateway.secrets import SecretBox
from musubi.integrations.models import Integration, IssueLink, OutboxItem
from musubi.integrations.service import open_tracker
from musubi.integrations.sync import _remote_changed, remote_snapshot
from musubi.integrations.tracker import (
    Issue,
    IssueDraft,
    Tracker,
    TrackerError,
    TrackerRateLimited,
)
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.storage.leases import Leases

__all__ = ["OutboxWorker"]

log = logging.getLogger("musubi.integrations")


@dataclass(frozen=True)
class _Claimed:
    id: str
    tenant_id: str
    integration_id: str
    item_id: str
    attempts: int
    payload: dict[str, Any]
    payload_hash: str


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        egress: EgressRules,
        *,
        concurrency: int = 4,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
        max_attempts: int = 8,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        reconcile_every_s: float = 900.0,
        notices_every_s: float = 2.0,
        pipeline_poll_s: float = 5.0,
    ) -> None:
        self.db, self.box, self.egress = db, box, egress
        self.concurrency, self.lease_s, self.poll_s = concurrency, lease_s, poll_s
        self.leases = Leases(OutboxItem, lease_s)
        self.max_attempts, self.backoff_s, self.max_backoff_s = (
            max_attempts,
            backoff_s,
            max_backoff_s,
        )
        self.reconcile_every_s, self.notices_every_s = reconcile_every_s, notices_every_s
        self.pipeline_poll_s = pipeline_poll_s
        self._trackers: dict[str, Tracker] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for tracker in self._trackers.values():
            await tracker.aclose()
        self._trackers.clear()

    async def _loop(self) -> None:
        from musubi.integrations.alerts import post_alerts
        from musubi.integrations.notices import post_run_notices
        from musubi.integrations.pipeline_notices import post_pipeline_notices
        from musubi.integrations.pipelines import follow_due

        last_reconcile = last_notices = time.monotonic()
        while True:
            if time.monotonic() - last_reconcile > self.reconcile_every_s:
                last_reconcile = time.monotonic()
                await self.reconcile_all()
            if time.monotonic() - last_notices > self.notices_every_s:
                last_notices = time.monotonic()
                try:
                    await post_run_notices(self.db, self.box, self.egress)
                except Exception:  # chat must not stop tracker delivery; logged with trace
                    log.exception("integrations: posting run notices failed")
                try:  # quota at 80 %, audit verification failed
                    await post_alerts(self.db, self.box, self.egress)
                except Exception:  # chat must not stop tracker delivery; logged with trace
                    log.exception("integrations: posting chat alerts failed")
                try:  # pipelines triggered from MUSUBI, followed to their result
                    await follow_due(self.db, self.box, self.egress, poll_s=self.pipeline_poll_s)
                    await post_pipeline_notices(self.db, self.box, self.egress)
                except Exception:  # a pipeline must not stop tracker delivery; logged with trace
                    log.exception("integrations: following pipelines failed")
            try:
                done = await self.run_once()
            except Exception:  # a database hiccup must not stop delivery; logged with trace
                log.exception("integrations outbox: delivery round failed")
                done = 0
            if not done:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()

    async def reconcile_all(self) -> None:
        """Reconcile every enabled tracker integration (catches missed webhooks)."""
        from musubi.integrations.reconcile import reconcile
        from musubi.integrations.service import tracker_names

        with system_scope():
            async with self.db.read() as s:
                rows = (
                    await s.execute(
                        select(Integration.id, Integration.tenant_id).where(
                            Integration.enabled.is_(True), Integration.kind.in_(tracker_names())
                        )
                    )
                ).all()
        for integration_id, tenant_id in rows:
            with bind_tenant(tenant_id):
                try:
                    policy = self.egress.for_tenant(tenant_id)
                    await reconcile(self.db, self.box, policy, integration_id)
                except Exception:  # one project's failure must not stop the others; logged
                    log.exception("integrations: reconcile of %s failed", integration_id)

    async def drain(self, *, until_empty: bool = True) -> int:
        """Deliver until nothing is due (for the CLI and tests); returns rows handled.
        With ``until_empty``, also waits for rows backing off."""
        total = 0
        while True:
            n = await self.run_once()
            total += n
            if n:
                continue
            if not until_empty or not await self._waiting():
                return total
            await asyncio.sleep(self.poll_s)

    async def _waiting(self) -> bool:
        with system_scope():
            async with self.db.read() as s:
                found = await s.scalar(
                    select(OutboxItem.id)
                    .where(OutboxItem.status.in_(("queued", "running")))
                    .limit(1)
                )
        return found is not None

    async def run_once(self) -> int:
        claimed = await self._claim(self.concurrency * 4)
        if not claimed:
            return 0
        sem = asyncio.Semaphore(self.concurrency)

        async def one(row: _Claimed) -> None:
            async with sem:
                with bind_tenant(row.tenant_id):
                    await self._deliver(row)

        await asyncio.gather(*(one(r) for r in claimed))
        return len(claimed)

    # -- claiming --------------------------------------------------------------------
    async def _claim(self, n: int) -> list[_Claimed]:
        now = utcnow()
        other = aliased(OutboxItem)
        busy = exists().where(
            other.integration_id == OutboxItem.integration_id,
            other.item_id == OutboxItem.item_id,
            other.id != OutboxItem.id,
            other.status == "running",
            other.lease_until >= now,
        )
        older = exists().where(
            other.integration_id == OutboxItem.integration_id,
            other.item_id == OutboxItem.item_id,
            other.status.in_(("queued", "running")),
            other.created_at < OutboxItem.created_at,
        )
        with system_scope():
            async with self.db.transaction() as s:
                query = (
                    select(OutboxItem)
                    .join(Integration, Integration.id == OutboxItem.integration_id)
                    .where(
                        Integration.enabled.is_(True),
                        self.leases.due(now, OutboxItem.next_at <= now),
                        ~busy,
                        ~older,
                    )
                    .order_by(OutboxItem.next_at, OutboxItem.created_at, OutboxItem.id)
                    .limit(n)
                )
                rows = list(await s.scalars(Leases.lock(query, self.db, of=OutboxItem)))
                await self.leases.take(s, [row.id for row in rows], now)
        return [
            _Claimed(
                row.id,
                row.tenant_id,
                row.integration_id,
                row.item_id,
                row.attempts + 1,  # counted by take()
                dict(row.payload),
                row.payload_hash,
            )
            for row in rows
        ]

    # -- delivering ------------------------------------------------------------------
    async def _tracker(self, integration: Integration) -> Tracker:
        key = f"{integration.id}:{integration.updated_at.isoformat()}"
        tracker = self._trackers.get(key)
        if tracker is None:
            policy = self.egress.for_tenant(integration.tenant_id)
            tracker = self._trackers[key] = open_tracker(integration, self.box, policy)
        return tracker

    async def _deliver(self, row: _Claimed) -> None:
        async with self.db.read() as s:
            integration = await s.get(Integration, row.integration_id)
            link = await s.scalar(
                select(IssueLink).where(
                    IssueLink.integration_id == row.integration_id,
                    IssueLink.item_id == row.item_id,
                )
            )
            known = (link.issue_key, dict(link.remote)) if link is not None else None
        if integration is None:
            return
        draft = IssueDraft(**{**row.payload, "labels": tuple(row.payload.get("labels", ()))})
        try:
            tracker = await self._tracker(integration)
            if known is not None:
                current = await tracker.get_issue(known[0])
                if _remote_changed(current, known[1]) and not _same(current, draft):
                    await self._conflict(row, current, draft)
                    return
                issue = await tracker.update_issue(current, draft)
            else:
                found = await tracker.find_issue(row.item_id) if row.attempts > 1 else None
                if found is not None:
                    issue = await tracker.update_issue(found, draft)
                else:
                    issue = await tracker.create_issue(draft)
        except TrackerError as exc:
            await self._failed(row, integration, exc)
            return
        await self._done(row, issue)

    async def _done(self, row: _Claimed, issue: Issue) -> None:
        async with self.db.transaction() as s:
            link = await s.scalar(
                select(IssueLink).where(
                    IssueLink.integration_id == row.integration_id,
                    IssueLink.item_id == row.item_id,
                )
            )
            if link is None:
                link = IssueLink(integration_id=row.integration_id, item_id=row.item_id)
                s.add(link)
            link.issue_key, link.issue_url = issue.key, issue.url
            link.local_hash, link.remote = row.payload_hash, remote_snapshot(issue)
            link.synced_at = utcnow()
            await s.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id)
                .values(status="done", done_at=utcnow(), lease_until=None, error=None)
                .execution_options(synchronize_session=False)
            )

    async def _conflict(self, row: _Claimed, current: Issue, draft: IssueDraft) -> None:
        from dataclasses import asdict

        from musubi.audit.service import record

        async with self.db.transaction() as s:
            link = await s.scalar(
                select(IssueLink).where(
                    IssueLink.integration_id == row.integration_id,
                    IssueLink.item_id == row.item_id,
                )
            )
            assert link is not None
            link.conflict = {
                "item_id": row.item_id,
                "issue_key": current.key,
                "local": asdict(draft),
                "remote": remote_snapshot(current),
                "base": link.remote,
                "detected_at": utcnow().isoformat(),
            }
            await s.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id)
                .values(
                    status="conflict",
                    lease_until=None,
                    error=f"{current.key} changed on the tracker since the last sync",
                )
                .execution_options(synchronize_session=False)
            )
            await record(
                s,
                "integration.conflict",
                f"{row.integration_id}/{row.item_id}",
                detail={"issue": current.key},
            )

    async def _failed(self, row: _Claimed, integration: Integration, exc: TrackerError) -> None:
        now = utcnow()
        values: dict[str, Any] = {"lease_until": None, "error": exc.message}
        if exc.retryable and row.attempts < self.max_attempts:
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (row.attempts - 1))
            if isinstance(exc, TrackerRateLimited):
                delay = max(delay if row.attempts > 2 else 0.0, exc.retry_after)
            values |= {"status": "queued", "next_at": now + timedelta(seconds=delay)}
        else:
            values["status"] = "parked"
        async with self.db.transaction() as s:
            await s.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not exc.retryable:
                await s.execute(
                    update(Integration)
                    .where(Integration.id == integration.id)
                    .values(state="error", last_error=exc.message)
                    .execution_options(synchronize_session=False)
                )
        if values["status"] == "parked":
            log.warning("outbox row %s parked: %s", row.id, exc.message)


def _same(issue: Issue, draft: IssueDraft) -> bool:
    return (issue.title, issue.body, issue.closed) == (draft.title, draft.body, draft.closed)
