"""Batches: create one from an uploaded JSONL file, follow it, cancel it, finalize it.

Creating a batch reads its input file line by line (never whole) and stores each line as
a :class:`BatchLine`: pending, or failed at once with its line number when it is
malformed. The batch is split into :class:`BatchJob` ranges in the same transaction, so
a batch is never stored without the work that completes it. A model the key may not use
rejects the whole batch at creation, before anything is stored.

A batch belongs to the creating key's project and user, and its input file must be one
that key sees; following, listing and cancelling check the caller the same way
(:mod:`musubi.batch.ownership`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from musubi import jsonbody
from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.batch.files import get_file, iter_lines, save_file
from musubi.batch.models import JOBS, LINES, Batch, BatchJob, BatchLine
from musubi.batch.ownership import check_after, check_manage, check_visible, visible_where
from musubi.context import Actor, bind_actor, bind_tenant, system_scope
from musubi.errors import Conflict, InvalidInput, NotFound
from musubi.gateway.router import RoutingTable
from musubi.gateway.validation import validate_chat, validate_counts
from musubi.storage.base import new_id, utcnow
from musubi.storage.database import Database
from musubi.storage.queries import get_one, newest_first

__all__ = [
    "ENDPOINTS",
    "JobRef",
    "batch_json",
    "cancel_batch",
    "close_stranded",
    "counts",
    "create_batch",
    "expire_due",
    "finalize",
    "get_batch",
    "list_batches",
]

ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embedding",
}
ROWS_PER_INSERT = 1000
OPEN = ("validating", "in_progress", "finalizing", "cancelling")
FINALIZE_STALE = timedelta(minutes=2)  # a finalizer silent this long died: take over


@dataclass(frozen=True)
class JobRef:
    tenant_id: str
    job_id: str


def _line_error(number: int, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": f"line {number}: {message}", "line": number}


def _validate_body(op: str, body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidInput("body: must be an object", field="body")
    validate_counts(body)
    if op == "chat":
        validate_chat(body)
    elif not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidInput("model: a model name is required", field="model")
    elif op == "embedding" and (not isinstance(body.get("input"), str | list) or not body["input"]):
        raise InvalidInput("input: a string or a non-empty list is required", field="input")
    elif op == "completion" and not isinstance(body.get("prompt"), str | list):
        raise InvalidInput("prompt: a string or a list of strings is required", field="prompt")


def _parse(number: int, raw: bytes, endpoint: str, seen: set[str]) -> tuple[dict[str, Any], str]:
    """One input line -> (row values, model); raises ValueError with the line's problem."""
    try:
        jsonbody.check(raw)  # the limits of a request body hold for each line too
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    try:
        item = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise ValueError("must be a JSON object")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ValueError("custom_id: a non-empty string is required")
    if custom_id in seen:
        raise ValueError(f"custom_id {custom_id!r} is used by an earlier line")
    if str(item.get("method", "")).upper() != "POST":
        raise ValueError("method: must be POST")
    if item.get("url") != endpoint:
        raise ValueError(f"url: must be the batch's endpoint {endpoint}")
    body = item.get("body")
    try:
        _validate_body(ENDPOINTS[endpoint], body)
    except InvalidInput as exc:
        raise ValueError(f"body.{exc.message}") from None
    assert isinstance(body, dict)
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    seen.add(custom_id)
    values = {"custom_id": custom_id[:512], "request": json.dumps(body, separators=(",", ":"))}
    return values, str(body["model"])


async def create_batch(
    db: Database,
    session: AsyncSession,
    principal: Principal,
    table: RoutingTable,
    *,
    input_file_id: str,
    endpoint: str,
    completion_window: str = "24h",
    metadata: dict[str, str] | None = None,
    priority: int = 0,
    job_lines: int = 100,
) -> tuple[Batch, list[JobRef]]:
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"endpoint: must be one of {', '.join(ENDPOINTS)}", field="endpoint")
    if completion_window != "24h":
        raise InvalidInput("completion_window: only '24h' is supported", field="completion_window")
    source = await get_file(session, principal, input_file_id)
    if source.purpose != "batch":
        raise InvalidInput(
            f"input_file_id: file {input_file_id!r} has purpose {source.purpose!r}, not 'batch'",
            field="input_file_id",
        )
    now = utcnow()
    batch = Batch(
        id=new_id("batch"),
        endpoint=endpoint,
        input_file_id=input_file_id,
        completion_window=completion_window,
        status="in_progress",
        priority=priority,
        meta=metadata or None,
        key_id=principal.key_id,
        user_id=principal.user_id,
        project_id=principal.project_id,
        team_id=principal.project_team_id,
        actor=principal.actor,
        in_progress_at=now,
        expires_at=now + timedelta(hours=24),
    )
    session.add(batch)
    await session.flush()
    tenant = principal.tenant_id
    first_use: dict[str, int] = {}
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    total = 0
    jobs: list[dict[str, Any]] = []
    span: list[int] = []  # [first, last, count] of the job being planned

    async def flush_rows() -> None:
        if rows:
            await session.execute(insert(LINES), rows)
            rows.clear()

    async for number, raw in iter_lines(db, input_file_id):
        if not raw.strip():
            continue
        total += 1
        row: dict[str, Any] = {"tenant_id": tenant, "batch_id": batch.id, "line": number}
        row.update(attempts=0, custom_id=None, request=None, status="pending")
        row.update(status_code=None, response=None, error=None, finished_at=None)  # same keys
        try:
            values, model = _parse(number, raw, endpoint, seen)
        except ValueError as exc:
            error = _line_error(number, "invalid_request", str(exc))
            row.update(status="failed", status_code=400, error=json.dumps(error), finished_at=now)
        else:
            row.update(values)
            first_use.setdefault(model, number)
            span = [span[0], number, span[2] + 1] if span else [number, number, 1]
            if span[2] >= job_lines:
                jobs.append(_job(batch, span[0], span[1]))
                span = []
        rows.append(row)
        if len(rows) >= ROWS_PER_INSERT:
            await flush_rows()
    await flush_rows()
    if total == 0:
        raise InvalidInput(
            f"input_file_id: file {input_file_id!r} has no requests", field="input_file_id"
        )
    for model, number in first_use.items():
        try:
            table.plan(model)
        except NotFound:
            raise InvalidInput(
                f"input_file_id: line {number} asks for model {model!r}, which this key may not "
                f"use; available: {', '.join(table.usable_models()) or '(none)'}",
                field="input_file_id",
            ) from None
    batch.total = total
    if span:
        jobs.append(_job(batch, span[0], span[1]))
    if not jobs:  # every line failed validation: one empty job finalizes the batch
        jobs.append(_job(batch, 0, 0))
    for i in range(0, len(jobs), ROWS_PER_INSERT):
        await session.execute(insert(JOBS), jobs[i : i + ROWS_PER_INSERT])
    await record(session, "batch.create", batch.id, detail={"lines": total, "endpoint": endpoint})
    return batch, [JobRef(tenant, j["id"]) for j in jobs]


def _job(batch: Batch, first: int, last: int) -> dict[str, Any]:
    return {
        "id": f"{batch.id}:{first}-{last}",
        "tenant_id": batch.tenant_id,
        "batch_id": batch.id,
        "first_line": first,
        "last_line": last,
        "priority": batch.priority,
        "status": "queued",
        "attempts": 0,
        "created_at": batch.created_at,
    }


async def get_batch(session: AsyncSession, principal: Principal, batch_id: str) -> Batch:
    """The batch, if ``principal`` may see it; else :class:`NotFound`."""
    batch = await get_one(session, Batch, batch_id, "batch")
    await check_visible(session, principal, batch, "batch")
    return batch


async def list_batches(
    session: AsyncSession, principal: Principal, *, after: str | None, limit: int
) -> tuple[list[Batch], bool]:
    """The batches ``principal`` sees, newest first."""
    query = select(Batch)
    if (where := visible_where(principal, Batch)) is not None:
        query = query.where(where)
    await check_after(session, query, Batch, after)
    return await newest_first(session, query, Batch, after, limit)


async def counts(session: AsyncSession, batch: Batch) -> dict[str, int]:
    """Progress of a batch: stored once it is finished, counted by status while it runs."""
    if batch.completed is not None and batch.failed is not None:
        return {"total": batch.total, "completed": batch.completed, "failed": batch.failed}
    return await _count_lines(session, batch.id)


async def _count_lines(session: AsyncSession, batch_id: str) -> dict[str, int]:
    query = (
        select(BatchLine.status, func.count())
        .where(BatchLine.batch_id == batch_id)
        .group_by(BatchLine.status)
    )
    by = {status: int(n) for status, n in (await session.execute(query)).all()}
    return {
        "total": sum(by.values()),
        "completed": by.get("succeeded", 0),
        "failed": by.get("failed", 0) + by.get("cancelled", 0),
    }


def _ts(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def batch_json(b: Batch, request_counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "errors": {"object": "list", "data": b.errors} if b.errors else None,
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": b.status,
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": _ts(b.created_at),
        "in_progress_at": _ts(b.in_progress_at),
        "expires_at": _ts(b.expires_at),
        "finalizing_at": _ts(b.finalizing_at),
        "completed_at": _ts(b.completed_at),
        "failed_at": _ts(b.failed_at),
        "expired_at": _ts(b.expired_at),
        "cancelling_at": _ts(b.cancelling_at),
        "cancelled_at": _ts(b.cancelled_at),
        "request_counts": request_counts,
        "metadata": b.meta,
    }


async def cancel_batch(
    session: AsyncSession, principal: Principal, batch_id: str
) -> tuple[Batch, list[JobRef]]:
    """Stop taking lines; lines in flight finish. Returns the finalizing job to run. Its
    creator may cancel a batch, or a holder of ``projects:write`` for its project.

    The batch row is locked first: a second cancel at the same moment waits, then finds
    the batch cancelling (idempotent) instead of adding a second closing job."""
    batch = await get_one(session, Batch, batch_id, "batch", lock=True)
    await check_manage(session, principal, batch, "batch", "cancel")
    if batch.status not in ("in_progress", "validating"):
        if batch.status in ("cancelling", "cancelled"):
            return batch, []
        raise Conflict(
            f"batch {batch_id!r} is {batch.status}; only a running batch can be cancelled"
        )
    batch.status, batch.cancelling_at = "cancelling", utcnow()
    job_id = f"{batch.id}:cancel"
    await session.execute(
        insert(JOBS),
        [_job(batch, 0, 0) | {"id": job_id}],
    )
    await record(session, "batch.cancel", batch.id)
    return batch, [JobRef(batch.tenant_id, job_id)]


async def expire_due(db: Database) -> list[JobRef]:
    """Stop the running batches whose completion window has ended (any tenant): like a
    cancel, their unsent lines end as ``batch_expired`` and the batch as ``expired``.
    Returns the jobs that close them."""
    now = utcnow()
    jobs: list[JobRef] = []
    with system_scope():
        async with db.transaction() as s:
            due = (
                await s.scalars(  # another process expiring the same batch skips it
                    select(Batch)
                    .where(Batch.status == "in_progress", Batch.expires_at < now)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for batch in due:
                batch.status, batch.expired_at = "cancelling", now
                job_id = f"{batch.id}:expire"
                await s.execute(insert(JOBS), [_job(batch, 0, 0) | {"id": job_id}])
                jobs.append(JobRef(batch.tenant_id, job_id))
    return jobs


async def close_stranded(db: Database) -> int:
    """Close the batches whose jobs are all done but that nobody closed: the worker that
    ran the last job died before closing it, or a finalizer died midway. Returns how many
    this call closed (another process may close one first: each is closed once)."""
    now = utcnow()
    open_job = exists().where(BatchJob.batch_id == Batch.id, BatchJob.status != "done")
    with system_scope():
        async with db.read() as s:
            rows = (
                await s.execute(select(Batch.tenant_id, Batch.id).where(_closable(now), ~open_job))
            ).all()
    closed = 0
    for tenant_id, batch_id in rows:
        with bind_tenant(tenant_id), bind_actor(Actor("batch")):
            closed += await finalize(db, batch_id)
    return closed


def _closable(now: datetime) -> ColumnElement[bool]:
    """A batch someone may close now: running or cancelling, or left finalizing by a
    finalizer silent for FINALIZE_STALE (it died: take over)."""
    return or_(
        Batch.status.in_(("in_progress", "cancelling")),
        (Batch.status == "finalizing") & (Batch.finalizing_at < now - FINALIZE_STALE),
    )


# -- finalize ---------------------------------------------------------------------------------


async def finalize(db: Database, batch_id: str) -> bool:
    """Write the output and error files and close the batch, once: the first caller to
    move it to ``finalizing`` does it (or one taking over a finalizer that died)."""
    now = utcnow()
    async with db.transaction() as s:
        claimed = await s.execute(
            update(Batch)
            .where(Batch.id == batch_id, _closable(now))
            .values(status="finalizing", finalizing_at=now)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return False
        batch = await get_one(s, Batch, batch_id, "batch")
        expired = batch.expired_at is not None
        cancelled = expired or batch.cancelling_at is not None
        if cancelled:
            why = (
                {"code": "batch_expired", "message": "the batch's completion window ended"}
                if expired
                else {"code": "batch_cancelled", "message": "the batch was cancelled"}
            )
            await s.execute(
                update(BatchLine)
                .where(BatchLine.batch_id == batch_id, BatchLine.status == "pending")
                .values(status="cancelled", error=json.dumps(why), finished_at=now)
                .execution_options(synchronize_session=False)
            )
    outputs: dict[str, str | None] = {}
    for kind, statuses in (("output", ("succeeded",)), ("error", ("failed", "cancelled"))):
        async with db.transaction() as s:
            stored = await save_file(
                s,
                _result_lines(db, batch_id, statuses, kind),
                filename=f"{batch_id}_{kind}.jsonl",
                purpose="batch_output",
                max_bytes=1 << 62,
                audit=False,
                project_id=batch.project_id,  # the batch's project and creator
                user_id=batch.user_id,
            )
            if stored.bytes == 0:
                await s.delete(stored)
                outputs[kind] = None
            else:
                outputs[kind] = stored.id
    async with db.transaction() as s:
        batch = await get_one(s, Batch, batch_id, "batch")
        batch.output_file_id, batch.error_file_id = outputs["output"], outputs["error"]
        if expired:
            batch.status = "expired"
        elif cancelled:
            batch.status, batch.cancelled_at = "cancelled", utcnow()
        else:
            batch.status, batch.completed_at = "completed", utcnow()
        await s.execute(
            update(BatchJob)
            .where(BatchJob.batch_id == batch_id)
            .values(status="done")
            .execution_options(synchronize_session=False)
        )
        final = await _count_lines(s, batch_id)
        batch.completed, batch.failed = final["completed"], final["failed"]
        await record(s, f"batch.{batch.status}", batch_id, detail=final)
    return True


async def _result_lines(
    db: Database, batch_id: str, statuses: tuple[str, ...], kind: str
) -> AsyncIterator[bytes]:
    after = -1
    encode: Callable[[BatchLine], dict[str, Any]] = (
        _output_line if kind == "output" else _error_line
    )
    while True:
        async with db.read() as s:
            page = list(
                (
                    await s.scalars(
                        select(BatchLine)
                        .where(
                            BatchLine.batch_id == batch_id,
                            BatchLine.status.in_(statuses),
                            BatchLine.line > after,
                        )
                        .order_by(BatchLine.line)
                        .limit(ROWS_PER_INSERT)
                    )
                ).all()
            )
        if not page:
            return
        after = page[-1].line
        yield b"".join(
            json.dumps(encode(line), separators=(",", ":")).encode() + b"\n" for line in page
        )


def _request_id(line: BatchLine) -> str:
    return f"{line.batch_id}:{line.line}"


def _output_line(line: BatchLine) -> dict[str, Any]:
    return {
        "id": f"batch_req_{line.batch_id.removeprefix('batch_')}_{line.line}",
        "custom_id": line.custom_id,
        "response": {
            "status_code": line.status_code or 200,
            "request_id": _request_id(line),
            "body": json.loads(line.response or "null"),
        },
        "error": None,
    }


def _error_line(line: BatchLine) -> dict[str, Any]:
    error = json.loads(line.error or "null") or {"code": "error", "message": "failed"}
    response = None
    if line.status_code is not None:
        body = json.loads(line.response) if line.response else {"error": error}
        response = {"status_code": line.status_code, "request_id": _request_id(line), "body": body}
    return {
        "id": f"batch_req_{line.batch_id.removeprefix('batch_')}_{line.line}",
        "custom_id": line.custom_id,
        "response": response,
        "error": error,
    }
