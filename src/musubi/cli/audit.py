"""``musubi audit list|verify|checkpoint|export|purge``: a tenant's tamper-evident audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.audit.checkpoints import Mismatch
    from musubi.audit.service import EventFilter, VerifyReport
    from musubi.runtime import AppState

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
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Newest events to show.",
)
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
    help="Verify every chain: each tenant's (deleted ones too), each the registry names, "
    "and the '_system' one.",
)
@click.option(
    "--checkpoints",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Also check the database against the checkpoints in FILE (from `musubi audit "
    "checkpoint`): a chain behind one, diverging from one, or gone fails.",
)
@tenant_option
@json_option
def verify(
    all_tenants: bool, checkpoints: TextIO | None, tenant: str | None, as_json: bool
) -> None:
    """Check the hash chain and its signatures; exit 1 if it does not hold."""
    from musubi.audit import checkpoints as cps
    from musubi.audit import service
    from musubi.context import current_tenant_id

    if all_tenants and tenant is not None:
        raise click.UsageError("give --tenant or --all-tenants, not both")
    given = [] if checkpoints is None else cps.parse(checkpoints.read(), checkpoints.name)

    async def one(state: AppState) -> tuple[list[VerifyReport], list[Mismatch]]:
        tenant_id = current_tenant_id()
        assert tenant_id is not None  # run_as_operator bound it
        async with service.snapshot(state.db) as s:
            report = await service.verify(s, tenant_id, tenant_chain=True)
            found = [m for cp in given for m in await cps.check(s, cp, tenant_id)]
        await alert([report], state)
        return [report], found

    async def every(state: AppState) -> tuple[list[VerifyReport], list[Mismatch]]:
        async with service.snapshot(state.db) as s:  # every chain as of one moment
            reports = await service.verify_all(s)
            found = [m for cp in given for m in await cps.check(s, cp)]
        await alert(reports, state)
        return reports, found

    async def alert(reports: list[VerifyReport], state: AppState) -> None:
        """A broken chain: its tenant's chats hear it once (recorded outside the chain)."""
        from musubi.alerts import record_audit_failure

        for r in reports:
            if (b := r.broken) is not None:
                await record_audit_failure(state.db, r.tenant_id, b.seq, b.event_id, b.reason)

    if all_tenants:
        reports, mismatches = run_as_operator(every, system=True)
        emit([_report(r, as_json) for r in reports], as_json=as_json, columns=REPORT_COLUMNS)
    else:
        reports, mismatches = run_as_operator(one, tenant=tenant)
        emit(_report(reports[0], as_json), as_json=as_json)
    broken = [r for r in reports if r.broken is not None]
    for r in broken:
        click.echo(f"error: audit chain of tenant {r.tenant_id} is broken at {_where(r)}", err=True)
    for m in mismatches:
        click.echo(f"error: audit chain of tenant {m.tenant_id}: {m.reason}", err=True)
    if given and not mismatches:
        click.echo(f"checked against {len(given)} checkpoint(s)", err=True)
    if broken or mismatches:
        raise SystemExit(1)


@audit.command("checkpoint")
@click.option(
    "--output",
    "-o",
    type=click.File("a", encoding="utf-8", lazy=True),
    default="-",
    help="Append to FILE instead of writing to standard output. Keep it off this host.",
)
def checkpoint(output: TextIO) -> None:
    """Write a signed checkpoint of every chain's head (one JSON line).

    Refused (exit 1) unless every chain verifies. Keep the checkpoints where someone
    who can write the database cannot (another host, object storage with retention),
    and check against them with `musubi audit verify --all-tenants --checkpoints FILE`.
    """
    import json

    from musubi.audit import checkpoints as cps
    from musubi.audit import service

    async def work(state: AppState) -> dict[str, Any]:
        async with service.snapshot(state.db) as s:
            return await cps.take(s)

    taken = run_as_operator(work, system=True)
    output.write(json.dumps(taken, sort_keys=True) + "\n")
    output.flush()
    click.echo(f"checkpoint of {len(taken['heads'])} chains at {taken['at']}", err=True)


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
    from musubi.audit.retention import purge as purge_chain
    from musubi.audit.retention import purge_all
    from musubi.context import current_tenant_id
    from musubi.storage.tenants import Tenant

    if all_tenants and tenant is not None:
        raise click.UsageError("give --tenant or --all-tenants, not both")

    async def one(state: AppState) -> dict[str, Any]:
        tenant_id = current_tenant_id()
        assert tenant_id is not None  # run_as_operator bound it
        floor = state.settings.audit_retention_min_days
        async with state.db.transaction() as s:
            found = await s.get(Tenant, tenant_id)
            assert found is not None  # run_as_operator resolved it
            done = await purge_chain(s, found.id, found.audit_retention_days, floor)
            detail = {"removed": done.removed, "retention_days": done.retention_days}
            await service.record(s, "audit.purge", found.id, detail=detail)
        return {"tenant_id": found.id, **detail}

    async def every(state: AppState) -> list[dict[str, Any]]:
        removed = await purge_all(state.db, floor_days=state.settings.audit_retention_min_days)
        return [{"tenant_id": t, "removed": n} for t, n in sorted(removed.items())]

    if all_tenants:
        emit(run_as_operator(every, system=True), as_json=as_json, columns=("tenant_id", "removed"))
    else:
        emit(run_as_operator(one, tenant=tenant), as_json=as_json)
