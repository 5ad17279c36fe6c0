"""``musubi bulk import|export``: users, keys, projects and role assignments as CSV or JSON.

An import creates or updates item by item, through the same service functions (and audit
events) as the single commands; it prints a summary and the failed items, and exits 1
when any item failed. New keys' tokens are printed once. See docs/bulk.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.bulk import Caller, Format, ItemResult, Report
    from musubi.runtime import AppState

__all__ = ["bulk"]

KIND = click.Choice(["users", "keys", "projects", "assignments"])
FORMAT = click.Choice(["csv", "json"])


def _format_for(name: str | None) -> Format:
    return "csv" if name and name.lower().endswith(".csv") else "json"


def _caller(state: AppState) -> Caller:
    from musubi.bulk import Caller
    from musubi.context import current_tenant_id

    tenant_id = current_tenant_id()
    assert tenant_id is not None  # run_as_operator binds one
    return Caller(tenant_id, state.settings.effective_repos_root)


def _where(r: ItemResult) -> str:
    return f"line {r.line}" if r.line is not None else f"item {r.index}"


def _print_report(report: Report) -> None:
    counts = Counter(r.status for r in report.results)
    summary: dict[str, Any] = {"kind": report.kind, "total": report.total}
    summary |= {s: counts[s] for s in ("created", "updated", "unchanged", "failed")}
    emit(summary, as_json=False, title="bulk import")
    failures = [
        {"where": _where(r), "field": r.field, "error": r.error}
        for r in report.results
        if r.status == "failed"
    ]
    if failures:
        emit(failures, as_json=False, columns=("where", "field", "error"), title="failed items")
    tokens = [r for r in report.results if r.token]
    if tokens:  # plain lines, so a narrow terminal never folds a token
        click.echo("new keys (tokens shown once, store them now):")
        for r in tokens:
            click.echo(f"  {_where(r)}  {r.id}  {r.token}")


@click.group()
def bulk() -> None:
    """Import (create or update) and export users, keys, projects and role assignments."""


@bulk.command("import")
@click.argument("kind", type=KIND)
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format", "fmt", type=FORMAT, default=None, help="Default: csv for *.csv, else json."
)
@tenant_option
@json_option
def import_items(
    kind: str, file: BinaryIO, fmt: Format | None, tenant: str | None, as_json: bool
) -> None:
    """Create or update KIND from FILE (CSV with a header line, or JSON; - for stdin).

    Each item succeeds or fails on its own; exits 1 if any failed.
    """
    from musubi import bulk as bulk_

    body = file.read()
    fmt = fmt or _format_for(getattr(file, "name", None))

    async def work(state: AppState) -> Report:
        items = bulk_.parse(body, fmt, kind)
        return await bulk_.import_items(state.db, _caller(state), bulk_.KINDS[kind], items)

    report = run_as_operator(work, tenant=tenant)
    if as_json:
        emit(report.model_dump(mode="json", exclude_none=True), as_json=True)
    else:
        _print_report(report)
    if report.failed:
        raise SystemExit(1)


@bulk.command("export")
@click.argument("kind", type=KIND)
@click.option(
    "--format", "fmt", type=FORMAT, default=None, help="Default: csv for -o *.csv, else json."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Default: stdout."
)
@tenant_option
def export_items(kind: str, fmt: Format | None, output: str | None, tenant: str | None) -> None:
    """Export KIND in the form `musubi bulk import` accepts back (never key secrets)."""
    from musubi import bulk as bulk_

    spec = bulk_.KINDS[kind]
    fmt = fmt or _format_for(output)

    async def work(state: AppState) -> list[dict[str, Any]]:
        return await bulk_.export_rows(state.db, _caller(state), spec)

    rows = run_as_operator(work, tenant=tenant)
    text = bulk_.render(rows, spec.columns, fmt, kind)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(rows)} {kind} to {output}", err=True)
