"""``musubi audit list|verify|export|purge``: the tamper-evident audit log of a tenant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.api.state import AppState
    from musubi.audit.service import EventFilter, VerifyReport

__all__ = ["audit"]

F = TypeVar("F", bound=Callable[..., Any])

EVENT_COLUMNS = ("seq", "at", "actor", "action", "target", "outcome")
REPORT_COLUMNS = ("tenant_id", "ok", "checked", "first_seq", "last_seq", "broken")


def _iso(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or time; one without a zone is taken as UTC."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _filter_options(func: F) -> F:
    """--since, --until, --actor, --action, --target: shared by list and export."""
    options = [
        click.option("--since", callback=_iso, help="Events at or after this ISO time."),
        click.option("--until", callback=_iso, help="Events before this ISO time."),
        click.option("--actor", default=None, help="Exact actor, e.g. cli:alice."),
        click.option("--action", default=None, help="Exact action, or a prefix: 'key.*'."),
        click.option("--target", default=None, help="Exact target id."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _event_filter(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    **rest: Any,
) -> EventFilter:
    from musubi.audit.service import EventFilter

    return EventFilter(since, until, actor, action, target, **rest)


@click.group()
def audit() -> None:
    """Query, verify, export and purge a tenant's audit log (default: the root tenant)."""


@audit.command("list")
@_filter_options
@click.option("--before-seq", type=click.IntRange(min=1), default=None, help="Page: older events.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@tenant_option
@json_option
def list_events(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    before_seq: int | None,
    limit: int,
    tenant: str | None,
    as_json: bool,
) -> None:
    """List events, newest first."""
    from musubi.audit import service

    f = _event_filter(since, until, actor, action, target, before_seq=before_seq, limit=limit)

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [service.event_dict(e) for e in await service.list_events(s, f)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=EVENT_COLUMNS)


@audit.command("verify")
@click.option(
    "--all-tenants",
    is_flag=True,
    help="Verify every chain, deleted tenants' and the '_system' one included.",
)
@tenant_option
@json_option
def verify(all_tenants: bool, tenant: str | None, as_json: bool) -> None:
    """Check the hash chain and its signatures; exit 1 if it does not hold."""
    from musubi.audit import service
    from musubi.tenancy.context import current_tenant_id

    if all_tenants and tenant is not None:
        raise click.UsageError("give --tenant or --all-tenants, not both")

    async def one(state: AppState) -> list[VerifyReport]:
        tenant_id = current_tenant_id()
        assert tenant_id is not None  # run_as_operator bound it
        async with service.snapshot(state.db) as s:
            return [await service.verify(s, tenant_id)]

    async def every(state: AppState) -> list[VerifyReport]:
        from sqlalchemy import select

        from musubi.audit.models import AuditHead

        async with service.snapshot(state.db) as s:  # every chain as of one moment
            chains = (await s.scalars(select(AuditHead.tenant_id).order_by("tenant_id"))).all()
            return [await service.verify(s, tenant_id) for tenant_id in chains]

    if all_tenants:
        reports = run_as_operator(every, system=True)
        emit([_report(r, as_json) for r in reports], as_json=as_json, columns=REPORT_COLUMNS)
    else:
        reports = run_as_operator(one, tenant=tenant)
        emit(_report(reports[0], as_json), as_json=as_json)
    broken = [r for r in reports if r.broken is not None]
    for r in broken:
        click.echo(f"error: audit chain of tenant {r.tenant_id} is broken at {_where(r)}", err=True)
    if broken:
        raise SystemExit(1)


def _where(report: VerifyReport) -> str:
    b = report.broken
    return "" if b is None else f"seq {b.seq} (event id {b.event_id}): {b.reason}"


def _report(report: VerifyReport, as_json: bool) -> dict[str, Any]:
    """The report; for a table, the break as one line of text."""
    out = report.as_dict()
    if not as_json:
        out["broken"] = _where(report)
    return out


@audit.command("export")
@_filter_options
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write to FILE instead of standard output.",
)
@tenant_option
def export(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    output: TextIO,
    tenant: str | None,
) -> None:
    """Export events as JSON Lines, oldest first (streamed)."""
    import json

    from musubi.audit import service

    f = _event_filter(since, until, actor, action, target)

    async def work(state: AppState) -> int:
        count = 0
        async with state.db.read() as s:
            async for e in service.stream_events(s, f):
                output.write(json.dumps(service.event_dict(e), ensure_ascii=False) + "\n")
                count += 1
        return count

    count = run_as_operator(work, tenant=tenant)
    output.flush()
    click.echo(f"exported {count} events", err=True)


@audit.command("purge")
@click.option(
    "--all-tenants", is_flag=True, help="Apply retention to every chain (as the daily task does)."
)
@tenant_option
@json_option
def purge(all_tenants: bool, tenant: str | None, as_json: bool) -> None:
    """Remove events older than the tenant's retention, keeping the chain verifiable."""
    from musubi.audit import service
    from musubi.audit.retention import purge_all
    from musubi.tenancy.context import current_tenant_id
    from musubi.tenancy.models import Tenant

    if all_tenants and tenant is not None:
        raise click.UsageError("give --tenant or --all-tenants, not both")

    async def one(state: AppState) -> dict[str, Any]:
        tenant_id = current_tenant_id()
        assert tenant_id is not None  # run_as_operator bound it
        async with state.db.transaction() as s:
            found = await s.get(Tenant, tenant_id)
            assert found is not None  # run_as_operator resolved it
            days = found.audit_retention_days
            removed = await service.purge(s, found.id, days)
            detail = {"removed": removed, "retention_days": days}
            await service.record(s, "audit.purge", found.id, detail=detail)
        return {"tenant_id": found.id, **detail}

    async def every(state: AppState) -> list[dict[str, Any]]:
        removed = await purge_all(state.db)
        return [{"tenant_id": t, "removed": n} for t, n in sorted(removed.items())]

    if all_tenants:
        emit(run_as_operator(every, system=True), as_json=as_json, columns=("tenant_id", "removed"))
    else:
        emit(run_as_operator(one, tenant=tenant), as_json=as_json)
