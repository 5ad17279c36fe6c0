"""A project's pipelines: configure (secrets sealed, URL through the egress policy),
trigger a run, and follow it to its result.

Following: a triggered run is a :class:`PipelineRun` row in ``queued``/``running`` with a
``next_check_at``. :func:`follow_due` reads every due run's status once and moves it on;
the server's integrations worker (:class:`~musubi.integrations.outbox.OutboxWorker`)
calls it on each round, and the API reads one run on demand (``?refresh=true``). A
completed run gets its ``result`` and ``finished_at``, an audit event, and, when it was
triggered for an orchestrator run, a ``pipeline.completed`` event on that run. Polling
slows from every ``poll_s`` to once a minute; a run not completed after ``FOLLOW_FOR``
is no longer followed (``state == "error"``). A refusal while following (a revoked
token) stops following it with the refusal as its ``error``; a 5xx or a timeout is tried
again at the next check.

Pipelines are a pluggable kind (:data:`~musubi.integrations.pipeline.PIPELINES`): what
differs between services (default URL, the target's and the pipeline id's form, the
secrets needed, the egress check, building the client) is asked of the implementation's
class, so a plugin's pipeline is configured, triggered and followed exactly as a
built-in one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from musubi.audit.service import record
from musubi.context import bind_tenant, system_scope
from musubi.errors import InvalidInput, NotFound, PluginError, UpstreamError
from musubi.integrations.pipeline import (
    PIPELINES,
    Pipeline,
    PipelineStatus,
    pipeline_class,
)
from musubi.integrations.pipeline_models import PipelineConfig, PipelineRun
from musubi.integrations.tracker import TrackerError, TrackerRefused, TrackerUnavailable
from musubi.storage.base import utcnow
from musubi.tenancy.models import Project

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.egress.policy import EgressPolicy, EgressRules
    from musubi.gateway.secrets import SecretBox
    from musubi.storage.database import Database

__all__ = [
    "FOLLOW_FOR",
    "PIPELINES",
    "delete_pipeline",
    "follow_due",
    "get_pipeline",
    "get_run",
    "list_pipelines",
    "list_runs",
    "open_pipeline",
    "pipeline_names",
    "public_pipeline",
    "public_run",
    "refresh_run",
    "set_pipeline",
    "trigger_run",
]

log = logging.getLogger("musubi.integrations")

KIND_MAX = 20  # PipelineConfig.kind's length
FOLLOW_FOR = timedelta(days=7)
FOLLOWED = ("queued", "running")
MAX_VARIABLES = 50


def _hint(token: str) -> str:
    return f"…{token[-4:]}" if len(token) >= 8 else "…"


def pipeline_names() -> tuple[str, ...]:
    """The installed pipeline kinds (built-ins and plugins)."""
    return tuple(PIPELINES.names())


def _check(name: str, ref: str) -> None:
    if not (name.isascii() and name.replace("-", "").replace("_", "").isalnum()) or len(name) > 64:
        raise InvalidInput("name must be 1-64 letters, digits, '-' or '_'", "name")
    if len(ref) > 200 or any(c.isspace() for c in ref):
        raise InvalidInput("ref must be a branch or tag name without spaces", "ref")


async def _project(s: AsyncSession, project_id: str) -> Project:
    project = await s.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found", model=Project, id=project_id)
    return project


async def set_pipeline(
    s: AsyncSession,
    box: SecretBox,
    egress: EgressPolicy,
    *,
    project_id: str,
    name: str,
    kind: str,
    target: str,
    base_url: str = "",
    pipeline: str = "",
    ref: str = "main",
    token: str | None = None,
    trigger_token: str | None = None,
    enabled: bool = True,
) -> PipelineConfig:
    """Create or replace the pipeline ``name`` of a project. Omitted secrets are kept
    while ``kind`` and ``base_url`` stay the same."""
    cls = pipeline_class(kind)
    if len(kind) > KIND_MAX:  # the column holding it; a plugin's entry point name too long
        raise InvalidInput(
            f"{kind!r} is installed, but a pipeline's kind is {KIND_MAX} characters at most: "
            "the plugin must register a shorter name",
            "kind",
        )
    _check(name, ref)
    cls.check_target(target)
    cls.check_pipeline(pipeline)
    await _project(s, project_id)
    base_url = base_url or cls.default_base_url
    if not base_url:
        raise InvalidInput(f"{kind} needs base_url (e.g. {cls.base_url_example})", "base_url")
    cls.check_destination(base_url, egress)
    row = await s.scalar(
        select(PipelineConfig).where(
            PipelineConfig.project_id == project_id, PipelineConfig.name == name
        )
    )
    # Stored secrets are kept only for the same kind and destination: a new base_url must
    # be given its secrets again, or the stored token would be sent to a host nobody vetted.
    same = row is not None and row.kind == kind and row.base_url == base_url.rstrip("/")
    secret = box.open(row.secret) if row is not None and same else {}
    for key, value in (("token", token), ("trigger_token", trigger_token)):
        if value is not None:
            secret[key] = value
    for key, what in cls.secrets.items():
        if not secret.get(key):
            moved = "; base_url or kind changed, so the stored one is not sent there"
            raise InvalidInput(
                f"{key} is required ({what}){moved if row and not same else ''}", key
            )
    if row is None:
        row = PipelineConfig(project_id=project_id, name=name)
        s.add(row)
    row.kind, row.base_url, row.target = kind, base_url.rstrip("/"), target
    row.pipeline, row.ref, row.enabled = pipeline, ref, enabled
    row.secret, row.key_hint = box.seal(secret), _hint(secret.get("token", ""))
    await s.flush()
    await record(
        s,
        "pipeline.set",
        f"{project_id}/{name}",
        detail={
            "kind": kind,
            "base_url": row.base_url,
            "target": target,
            "secrets": sorted(secret),
        },
    )
    return row


async def list_pipelines(s: AsyncSession, project_id: str) -> list[PipelineConfig]:
    await _project(s, project_id)
    rows = await s.scalars(
        select(PipelineConfig)
        .where(PipelineConfig.project_id == project_id)
        .order_by(PipelineConfig.name)
    )
    return list(rows)


async def get_pipeline(s: AsyncSession, project_id: str, name: str) -> PipelineConfig:
    row = await s.scalar(
        select(PipelineConfig).where(
            PipelineConfig.project_id == project_id, PipelineConfig.name == name
        )
    )
    if row is None:
        raise NotFound(f"project {project_id!r} has no pipeline {name!r}", model=PipelineConfig)
    return row


async def delete_pipeline(s: AsyncSession, project_id: str, name: str) -> PipelineConfig:
    row = await get_pipeline(s, project_id, name)
    await s.delete(row)
    await record(s, "pipeline.delete", f"{project_id}/{name}")
    return row


async def last_runs(s: AsyncSession, pipeline_ids: list[str]) -> dict[str, PipelineRun]:
    """The latest run of each pipeline."""
    out: dict[str, PipelineRun] = {}
    for pid in pipeline_ids:
        run = await s.scalar(
            select(PipelineRun)
            .where(PipelineRun.pipeline_id == pid)
            .order_by(PipelineRun.created_at.desc())
            .limit(1)
        )
        if run is not None:
            out[pid] = run
    return out


async def list_runs(
    s: AsyncSession, row: PipelineConfig, *, run_id: str | None = None, limit: int = 50
) -> list[PipelineRun]:
    query = select(PipelineRun).where(PipelineRun.pipeline_id == row.id)
    if run_id:
        query = query.where(PipelineRun.run_id == run_id)
    rows = await s.scalars(query.order_by(PipelineRun.created_at.desc()).limit(limit))
    return list(rows)


async def get_run(s: AsyncSession, row: PipelineConfig, run: str) -> PipelineRun:
    found = await s.get(PipelineRun, run)
    if found is None or found.pipeline_id != row.id:
        raise NotFound(f"pipeline {row.name!r} has no run {run!r}", model=PipelineRun)
    return found


def public_pipeline(
    row: PipelineConfig, box: SecretBox | None = None, last: PipelineRun | None = None
) -> dict[str, Any]:
    """The configuration without its secrets (which are set, and a token hint)."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "name": row.name,
        "kind": row.kind,
        "base_url": row.base_url,
        "target": row.target,
        "pipeline": row.pipeline,
        "ref": row.ref,
        "token_hint": row.key_hint,
        "secrets_set": sorted(box.open(row.secret)) if box is not None else None,
        "enabled": row.enabled,
        "last_run": public_run(last, row.name) if last is not None else None,
    }


def public_run(run: PipelineRun, name: str = "") -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": name,
        "external_id": run.external_id,
        "run_id": run.run_id,
        "ref": run.ref,
        "state": run.state,
        "result": run.result,
        "vendor_status": run.vendor_status,
        "web_url": run.web_url,
        "variables": run.variables,
        "error": run.error,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def open_pipeline(
    row: PipelineConfig, box: SecretBox, egress: EgressPolicy, *, timeout: float = 30.0
) -> Pipeline:
    """A client for ``row`` whose connections pass the egress policy. The URL is checked
    against the policy again (an operator may have narrowed it since the pipeline was
    saved); that refusal, or a pipeline whose plugin is no longer installed, is a
    :class:`~musubi.integrations.tracker.TrackerRefused`."""
    from musubi.egress.clients import egress_client

    try:
        cls = pipeline_class(row.kind)
        cls.check_destination(row.base_url, egress)
    except InvalidInput as exc:
        raise TrackerRefused(f"{row.kind}: {exc.message}") from exc
    client = egress_client(egress, timeout=timeout)
    made = cls.from_config(
        client,
        base_url=row.base_url,
        target=row.target,
        pipeline=row.pipeline,
        secret=box.open(row.secret),
    )
    if not isinstance(made, Pipeline):
        raise PluginError(f"{cls.__name__}.from_config gave a {type(made).__name__}")
    return made


def _check_variables(variables: dict[str, str]) -> None:
    if len(variables) > MAX_VARIABLES:
        raise InvalidInput(f"at most {MAX_VARIABLES} variables", "variables")
    for name in variables:
        plain = name.replace("_", "").replace(".", "")
        if len(name) > 255 or not (plain.isascii() and plain.isalnum()):
            raise InvalidInput(f"variable name {name!r}: letters, digits, '_' or '.'", "variables")


async def trigger_run(
    db: Database,
    box: SecretBox,
    egress: EgressPolicy,
    row: PipelineConfig,
    *,
    ref: str | None = None,
    variables: dict[str, str] | None = None,
    run_id: str | None = None,
) -> PipelineRun:
    """Trigger ``row`` and record the run to follow. The vendor's refusal is an
    :class:`~musubi.errors.UpstreamError` naming it (nothing is recorded then but the
    audit event)."""
    from musubi.orchestrator.models import Run

    variables = dict(variables or {})
    _check_variables(variables)
    ref = ref or row.ref
    if any(c.isspace() for c in ref) or len(ref) > 200:
        raise InvalidInput("ref must be a branch or tag name without spaces", "ref")
    if not row.enabled:
        raise InvalidInput(f"pipeline {row.name!r} is disabled", "name")
    if run_id is not None:
        async with db.read() as s:
            run = await s.get(Run, run_id)
        if run is None or run.project_id != row.project_id:
            raise NotFound(f"run {run_id!r} not found in this project", model=Run, id=run_id)
    try:
        client = open_pipeline(row, box, egress)
        try:
            status = await client.trigger(ref, variables)
        except (KeyError, TypeError, ValueError) as exc:  # an answer without the run's fields
            raise TrackerUnavailable(f"{row.kind}: unexpected answer ({exc!r})") from exc
        finally:
            await client.aclose()
    except TrackerError as exc:
        async with db.transaction() as s:
            await record(
                s,
                "pipeline.trigger",
                f"{row.project_id}/{row.name}",
                outcome="failure",
                detail={"ref": ref, "error": exc.message},
            )
        raise UpstreamError(row.kind, exc.message, exc.status) from exc
    async with db.transaction() as s:
        found = PipelineRun(
            pipeline_id=row.id,
            run_id=run_id,
            external_id=status.external_id,
            ref=ref,
            variables=sorted(variables),
            state="queued",
            checks=0,
            notified=False,
            created_at=utcnow(),
        )
        s.add(found)
        await _apply(s, found, status, row)
        await record(
            s,
            "pipeline.trigger",
            f"{row.project_id}/{row.name}",
            detail={"ref": ref, "external_id": status.external_id, "run_id": run_id},
        )
    return found


def _delay(checks: int, poll_s: float) -> timedelta:
    """Every ``poll_s`` for the first dozen checks, then slower, at most a minute."""
    return timedelta(seconds=min(60.0, poll_s * (1 + checks // 12)))


async def _apply(
    s: AsyncSession,
    run: PipelineRun,
    status: PipelineStatus,
    row: PipelineConfig,
    poll_s: float = 5.0,
) -> None:
    now = utcnow()
    was_done = run.state == "completed"
    run.state, run.result, run.vendor_status = status.state, status.result, status.vendor_status
    run.web_url = status.web_url or run.web_url
    run.error, run.checks = None, run.checks + 1
    run.next_check_at = now + _delay(run.checks, poll_s)
    if not status.done or was_done:
        return
    run.finished_at = now
    await s.flush()
    detail = {"external_id": run.external_id, "result": status.result, "url": run.web_url}
    await record(s, "pipeline.completed", f"{row.project_id}/{row.name}", detail=detail)
    if run.run_id:
        from musubi.orchestrator.service import add_event

        await add_event(s, run.run_id, "pipeline.completed", pipeline=row.name, **detail)


async def refresh_run(
    db: Database,
    box: SecretBox,
    egress: EgressPolicy,
    row: PipelineConfig,
    run_pk: str,
    *,
    poll_s: float = 5.0,
) -> PipelineRun:
    """Read the run's status from the vendor now (if it is still followed) and store it."""
    async with db.read() as s:
        run = await get_run(s, row, run_pk)
    if run.state not in FOLLOWED:
        return run
    status: PipelineStatus | TrackerError
    try:
        client = open_pipeline(row, box, egress)
    except TrackerError as exc:  # refused by the egress policy now, or uninstalled
        status = exc
    else:
        try:
            status = await client.status(run.external_id)
        except TrackerError as exc:
            status = exc
        except (KeyError, TypeError, ValueError) as exc:  # an answer without the run's fields
            status = TrackerUnavailable(f"{row.kind}: unexpected answer ({exc!r})")
        finally:
            await client.aclose()
    async with db.transaction() as s:  # locked: the worker and a refresh may race
        fresh = await s.get(PipelineRun, run_pk, with_for_update=True)
        if fresh is None or fresh.pipeline_id != row.id:
            raise NotFound(f"pipeline {row.name!r} has no run {run_pk!r}", model=PipelineRun)
        if fresh.state not in FOLLOWED:
            return fresh
        if isinstance(status, TrackerError):
            fresh.error = status.message
            fresh.checks += 1
            fresh.next_check_at = utcnow() + _delay(fresh.checks, poll_s)
            if not status.retryable:
                fresh.state = "error"
                await record(
                    s,
                    "pipeline.follow_failed",
                    f"{row.project_id}/{row.name}",
                    outcome="failure",
                    detail={"external_id": fresh.external_id, "error": status.message},
                )
        elif utcnow() - fresh.created_at > FOLLOW_FOR and not status.done:
            fresh.state, fresh.error = "error", f"not completed after {FOLLOW_FOR}; not followed"
        else:
            await _apply(s, fresh, status, row, poll_s)
        return fresh


async def follow_due(
    db: Database, box: SecretBox, egress: EgressRules, *, poll_s: float = 5.0, limit: int = 50
) -> int:
    """Read every due followed run once (of every tenant); returns the runs read."""
    with system_scope():
        async with db.read() as s:
            due = (
                await s.execute(
                    select(PipelineRun.id, PipelineRun.tenant_id, PipelineRun.pipeline_id)
                    .where(PipelineRun.state.in_(FOLLOWED), PipelineRun.next_check_at <= utcnow())
                    .order_by(PipelineRun.next_check_at)
                    .limit(limit)
                )
            ).all()
    for run_pk, tenant_id, pipeline_pk in due:
        with bind_tenant(tenant_id):
            async with db.read() as s:
                row = await s.get(PipelineConfig, pipeline_pk)
            if row is None:
                continue
            await refresh_run(db, box, egress.for_tenant(tenant_id), row, run_pk, poll_s=poll_s)
    return len(due)
