"""Run a batch job: its pending lines through the gateway, exactly as live requests.

Every line goes through :meth:`Gateway.run` with the identity of the key that created the
batch, so routing, fallbacks, the cache, request coalescing, quotas and usage records
apply to it as to a live call. A line's result is stored before it counts as done
(group commit: whatever finished meanwhile is written in one transaction), and a stored
success is never sent again: a job run twice (its worker died) sends only what is still
pending. Lines of one tenant share a priority-ordered limit of lines in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update

from musubi.access.principal import Principal
from musubi.batch.models import LINES, Batch, BatchJob, BatchLine
from musubi.batch.service import ENDPOINTS, finalize
from musubi.context import Actor, bind_actor, bind_tenant
from musubi.errors import (
    InvalidInput,
    MusubiError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    UpstreamError,
    UpstreamTimeout,
)
from musubi.gateway.pipeline import Call, Gateway
from musubi.identity.models import ApiKey
from musubi.quotas import Quotas
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.usage import UsageLedger

__all__ = ["BatchRunner", "PrioritySemaphore"]

log = logging.getLogger("musubi.batch")

MAX_QUOTA_WAIT_S = 60.0  # a quota that resets sooner is waited for; a longer one fails the line
STATUS_EVERY_S = 0.25  # how often a running job looks for a cancel


class PrioritySemaphore:
    """A counting semaphore whose waiters are served highest priority first (then FIFO)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # it was handed over as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters and self.used <= self.limit:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # the slot moves to the waiter: ``used`` stays
                return
        self.used -= 1


@dataclass
class _Result:
    tenant_id: str
    batch_id: str
    line: int
    values: dict[str, Any]
    done: asyncio.Future[None]


class ResultWriter:
    """Group commit: results that finish while a write is running go in the next one."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[_Result] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def write(self, tenant_id: str, batch_id: str, line: int, values: dict[str, Any]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Result(tenant_id, batch_id, line, values, fut))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        await fut

    async def _loop(self) -> None:
        while self._pending:
            items, self._pending = self._pending, []
            self._wake.clear()
            try:
                await self._store(items)
            except BaseException as exc:
                for item in items:
                    if not item.done.done():
                        item.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for item in items:
                    if not item.done.done():
                        item.done.set_result(None)

    async def _store(self, items: list[_Result]) -> None:
        table = LINES
        by_tenant: dict[str, list[_Result]] = {}
        for item in items:
            by_tenant.setdefault(item.tenant_id, []).append(item)
        for tenant_id, group in by_tenant.items():
            statement = (
                table.update()
                .where(
                    table.c.tenant_id == tenant_id,
                    table.c.batch_id == bindparam("b_batch"),
                    table.c.line == bindparam("b_line"),
                    table.c.status != "succeeded",  # a stored success is final
                )
                .values(
                    status=bindparam("status"),
                    status_code=bindparam("status_code"),
                    response=bindparam("response"),
                    error=bindparam("error"),
                    finished_at=bindparam("finished_at"),
                    attempts=table.c.attempts + 1,
                )
            )
            params = [{"b_batch": i.batch_id, "b_line": i.line, **i.values} for i in group]
            with bind_tenant(tenant_id):
                async with self.db.transaction() as s:
                    await s.execute(statement, params)


class BatchRunner:
    """What a worker (in the API process or a ``musubi worker``) runs jobs with."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        quotas: Quotas | None,
        ledger: UsageLedger | None,
        *,
        concurrency: int = 100,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.quotas = quotas
        self.ledger = ledger
        self.concurrency = concurrency
        self.writer = ResultWriter(db)
        self._limits: dict[str, PrioritySemaphore] = {}
        self.lines_sent = 0  # upstream attempts made by this process (for metrics)

    async def _limit(self, tenant_id: str) -> PrioritySemaphore:
        table = await self.gateway.table(tenant_id)
        limit = table.config.batch_concurrency or self.concurrency
        sem = self._limits.get(tenant_id)
        if sem is None:
            sem = self._limits[tenant_id] = PrioritySemaphore(limit)
        sem.limit = limit
        return sem

    async def run_job(self, tenant_id: str, job_id: str) -> None:
        with bind_tenant(tenant_id), bind_actor(Actor("batch")):
            async with self.db.read() as s:
                job = await s.get(BatchJob, job_id)
                batch = None if job is None else await s.get(Batch, job.batch_id)
            if job is None or batch is None or job.status == "done":
                return
            if job.status == "queued":
                await self._mark(job_id, "running")
            if batch.status == "in_progress" and job.last_line > 0:
                await self._run_lines(batch, job)
            async with self.db.transaction() as s:
                # one closing job per batch at a time: without the row lock, two jobs ending
                # together on PostgreSQL each count the other as open and neither closes it
                # (NO KEY UPDATE: the weakest lock that closers still take in turn)
                await s.execute(
                    select(Batch.id).where(Batch.id == batch.id).with_for_update(key_share=True)
                )
                await s.execute(
                    update(BatchJob)
                    .where(BatchJob.id == job_id)
                    .values(status="done")
                    .execution_options(synchronize_session=False)
                )
                left = await s.scalar(
                    select(func.count())
                    .select_from(BatchJob)
                    .where(BatchJob.batch_id == batch.id, BatchJob.status != "done")
                )
            if not left:  # the last job of the batch closes it (a cancelled one too)
                await finalize(self.db, batch.id)

    async def _mark(self, job_id: str, status: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(
                update(BatchJob)
                .where(BatchJob.id == job_id)
                .values(status=status)
                .execution_options(synchronize_session=False)
            )

    async def _run_lines(self, batch: Batch, job: BatchJob) -> None:
        async with self.db.read() as s:
            rows = (
                await s.execute(
                    select(BatchLine.line, BatchLine.request).where(
                        BatchLine.batch_id == batch.id,
                        BatchLine.line.between(job.first_line, job.last_line),
                        BatchLine.status == "pending",
                    )
                )
            ).all()
            key_ok = await self._key_usable(s, batch)
        if not rows:
            return
        if not key_ok:
            error = {"code": "key_revoked", "message": "the batch's API key was revoked or expired"}
            for line, _ in rows:
                await self.writer.write(batch.tenant_id, batch.id, line, _failed(401, error))
            return
        principal = Principal(
            tenant_id=batch.tenant_id,
            user_id=batch.user_id,
            actor=batch.actor,
            key_id=batch.key_id,
            project_id=batch.project_id,
            project_team_id=batch.team_id,
        )
        sem = await self._limit(batch.tenant_id)
        state = _Watch(self.db, batch.id)

        async def one(line: int, request: str | None) -> None:
            await sem.acquire(batch.priority)
            try:
                if await state.stopped():
                    return
                values = await self._run_line(
                    principal, batch, line, json.loads(request or "{}"), state
                )
                if values is not None:
                    await self.writer.write(batch.tenant_id, batch.id, line, values)
            finally:
                sem.release()

        await asyncio.gather(*(one(line, request) for line, request in rows))

    async def _key_usable(self, s: Any, batch: Batch) -> bool:
        if batch.key_id is None:
            return True
        key = await s.get(ApiKey, batch.key_id)
        now = utcnow()
        return bool(
            key is not None
            and key.revoked_at is None
            and (key.expires_at is None or key.expires_at > now)
        )

    async def _run_line(
        self, principal: Principal, batch: Batch, line: int, body: dict[str, Any], state: _Watch
    ) -> dict[str, Any] | None:
        call = Call(
            principal=principal,
            op=ENDPOINTS[batch.endpoint],  # type: ignore[arg-type]
            body=body,
            request_id=f"{batch.id}:{line}",
        )
        while True:
            try:
                self.lines_sent += 1
                outcome = await self.gateway.run(call, self.quotas, self.ledger)
            except QuotaExceeded as exc:
                if exc.retry_after > MAX_QUOTA_WAIT_S:
                    return _failed(429, {"code": "quota_exceeded", "message": exc.message})
                await asyncio.sleep(exc.retry_after)
                if await state.stopped():
                    return None
                continue
            except (InvalidInput, NotFound) as exc:
                code = 400 if isinstance(exc, InvalidInput) else 404
                return _failed(code, {"code": "invalid_request", "message": exc.message})
            except PermissionDenied as exc:
                return _failed(403, {"code": "permission_denied", "message": exc.message})
            except UpstreamTimeout as exc:
                return _failed(504, {"code": "upstream_timeout", "message": exc.message})
            except UpstreamError as exc:
                return _failed(502, {"code": "upstream_error", "message": exc.message})
            except MusubiError as exc:
                return _failed(500, {"code": "error", "message": exc.message})
            return {
                "status": "succeeded",
                "status_code": 200,
                "response": json.dumps(outcome.data, separators=(",", ":")),
                "error": None,
                "finished_at": utcnow(),
            }


def _failed(status_code: int, error: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "failed",
        "status_code": status_code,
        "response": json.dumps({"error": error}),
        "error": json.dumps(error),
        "finished_at": utcnow(),
    }


class _Watch:
    """Whether the batch was cancelled, looked up at most every STATUS_EVERY_S."""

    def __init__(self, db: Database, batch_id: str) -> None:
        self.db, self.batch_id = db, batch_id
        self._at = time.monotonic()
        self._stopped = False
        self._lock = asyncio.Lock()

    async def stopped(self) -> bool:
        if self._stopped or time.monotonic() - self._at < STATUS_EVERY_S:
            return self._stopped
        async with self._lock:
            if time.monotonic() - self._at >= STATUS_EVERY_S:
                async with self.db.read() as s:
                    status = await s.scalar(select(Batch.status).where(Batch.id == self.batch_id))
                self._stopped = status != "in_progress"
                self._at = time.monotonic()
        return self._stopped
