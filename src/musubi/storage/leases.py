"""One way to hold a lease on a database row: the rows are the queue, a lease says who works.

Work that must survive a dead process is a row with ``status`` and ``lease_until`` (and,
where the holder must be known, ``worker``): a worker claims a row by setting a lease,
renews it while it works, and releases it when it stops early; a worker that dies (SIGKILL,
a lost host) stops renewing, its lease runs out, and another worker claims the row. The
batch job queue (:class:`musubi.batch.queue.DatabaseQueue`), fine-tuning jobs
(:mod:`musubi.finetune.worker`), the integrations outbox (:mod:`musubi.integrations.outbox`)
and orchestrator runs (:class:`musubi.orchestrator.runner.Orchestrator`) all hold their
leases through :class:`Leases`, parametrised by the table (an ORM class) and, for tables
with a ``worker`` column, by this process's worker name.

What is shared, and what each caller still decides:

* **Due rows** (:meth:`Leases.due`): ``queued`` (and ready, a caller's extra condition,
  e.g. the outbox's ``next_at``), or ``running`` with a lease that ran out. Queues that
  hand out many rows select them first, locked with ``SKIP LOCKED`` on PostgreSQL
  (:meth:`Leases.lock`: two workers never wait on, or take, the same row; SQLite writes
  one transaction at a time), in their own order and with their own extra conditions
  (the outbox: one row per item in flight), and then :meth:`Leases.take` them.
* **A single row** (:meth:`Leases.claim`): one conditional ``UPDATE`` that succeeds only
  when the row is free, already ours, or its lease ran out; the row count says who won.
  Orchestrator runs are claimed this way (a run is taken up by id, and keeps its status).
* **Renew** (:meth:`Leases.renew`) and **release** (:meth:`Leases.release`): only the
  holder's rows (``worker`` is ours, when the table has it), only while ``running`` where
  the status says so; release puts a ``running`` row back to ``queued`` where the status
  is the queue (batch jobs, fine-tuning jobs) and only drops the lease where it is not
  (a run keeps ``running`` and is taken up again from its steps).

Every method takes the caller's session, so each subsystem keeps its own transaction and
tenant scope. Finishing a row (``done``, ``failed``, ``parked``...) is the subsystem's own
update, which also clears the lease.

Not here: chat notice claims (:func:`musubi.integrations.notices.claim_post`) are not a
lease on a work row but a claim row inserted once per post (the insert wins; a claim
older than its lease is taken over with one conditional ``UPDATE`` on when it was made),
so two processes post each notice once; folding it in would make both harder to read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.storage.base import utcnow
from musubi.storage.database import Database

__all__ = ["Leases"]

Ts = TypeVarTuple("Ts")

QUEUED, RUNNING = "queued", "running"


@dataclass(frozen=True)
class Leases:
    """Leases on the rows of ``model``: an ORM class with ``id``, ``status`` and
    ``lease_until`` columns, ``attempts`` for :meth:`take`, and ``worker`` when ``holder``
    (this process's worker name) is given."""

    model: Any
    lease_s: float
    holder: str | None = None

    def until(self, now: datetime | None = None) -> datetime:
        """When a lease taken or renewed at ``now`` runs out."""
        return (now or utcnow()) + timedelta(seconds=self.lease_s)

    def lapsed(self, now: datetime) -> ColumnElement[bool]:
        """Nobody holds the row: no lease, or one that ran out."""
        return or_(self.model.lease_until.is_(None), self.model.lease_until < now)

    def due(self, now: datetime, *ready: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows to claim: ``queued`` (and ``ready``), or ``running`` with a lease that ran
        out (its worker died)."""
        m = self.model
        return or_(
            and_(m.status == QUEUED, *ready),
            and_(m.status == RUNNING, m.lease_until < now),
        )

    @staticmethod
    def lock(query: Select[*Ts], db: Database, *, of: Any = None) -> Select[*Ts]:
        """``query`` locking the rows it selects, skipping rows another transaction holds,
        on PostgreSQL (SQLite serialises writers: nothing to skip)."""
        if db.engine.dialect.name != "postgresql":
            return query
        return query.with_for_update(skip_locked=True, of=of)

    async def take(self, s: AsyncSession, ids: Collection[str], now: datetime) -> None:
        """Mark selected (and locked) due rows ``running`` under a new lease, counting an
        attempt, with this process as their ``worker`` where the table has one."""
        if not ids:
            return
        m = self.model
        values: dict[str, Any] = {
            "status": RUNNING,
            "lease_until": self.until(now),
            "attempts": m.attempts + 1,
        }
        if self.holder is not None:
            values["worker"] = self.holder
        await s.execute(
            update(m)
            .where(m.id.in_(list(ids)))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def claim(self, s: AsyncSession, row_id: str, *where: ColumnElement[bool]) -> bool:
        """Take one row with one conditional ``UPDATE``: only if it is free, already ours or
        its lease ran out (and ``where`` holds). True when this process now holds it."""
        m, now = self.model, utcnow()
        result = await s.execute(
            update(m)
            .where(
                m.id == row_id,
                *where,
                or_(m.worker.is_(None), m.worker == self.holder, self.lapsed(now)),
            )
            .values(worker=self.holder, lease_until=self.until(now))
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def renew(
        self, s: AsyncSession, ids: Collection[str], *, running_only: bool = True
    ) -> int:
        """Extend the leases this process holds on ``ids`` (only ``running`` rows, unless
        ``running_only`` is false); the number renewed (fewer: cancelled or taken over)."""
        if not ids:
            return 0
        result = await s.execute(
            update(self.model)
            .where(*self._held(ids, running_only))
            .values(lease_until=self.until())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def release(self, s: AsyncSession, ids: Collection[str], *, requeue: bool) -> None:
        """Give the leases on ``ids`` back so another worker takes the rows up at once:
        ``requeue`` puts ``running`` rows back to ``queued``; without it only the lease (and
        the worker) is dropped, whatever the status."""
        if not ids:
            return
        values: dict[str, Any] = {"lease_until": None}
        if requeue:
            values["status"] = QUEUED
        if self.holder is not None:
            values["worker"] = None
        await s.execute(
            update(self.model)
            .where(*self._held(ids, requeue))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def _held(self, ids: Collection[str], running_only: bool) -> list[ColumnElement[bool]]:
        m = self.model
        where: list[ColumnElement[bool]] = [m.id.in_(list(ids))]
        if self.holder is not None:
            where.append(m.worker == self.holder)
        if running_only:
            where.append(m.status == RUNNING)
        return where
