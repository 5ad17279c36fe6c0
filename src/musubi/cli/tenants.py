"""``musubi tenants list|create|show|update|delete``: organisations, managed in system scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.runtime import AppState
    from musubi.storage.tenants import Tenant

__all__ = ["tenants"]

COLUMNS = ("id", "name", "is_root", "audit_retention_days", "created_at")
RETENTION = click.IntRange(1, 36500)


async def _resolve(session: AsyncSession, value: str) -> str:
    """The id of the tenant whose id or name is ``value`` (in system scope)."""
    from sqlalchemy import or_, select

    from musubi.errors import NotFound
    from musubi.storage.tenants import Tenant

    found = await session.scalar(
        select(Tenant.id).where(or_(Tenant.id == value, Tenant.name == value))
    )
    if found is None:
        raise NotFound(f"tenant {value!r} not found", model=Tenant, id=value)
    return found


def _out(tenant: Tenant) -> dict[str, Any]:
    from musubi.api.schemas import TenantOut

    return TenantOut.model_validate(tenant).model_dump(mode="json")


@click.group()
def tenants() -> None:
    """Manage tenants (organisations). The root tenant is created on first start."""


@tenants.command("list")
@json_option
def list_tenants(as_json: bool) -> None:
    """List every tenant."""
    from musubi.tenancy import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [_out(t) for t in await service.list_tenants(s)]

    emit(run_as_operator(work, system=True), as_json=as_json, columns=COLUMNS)


@tenants.command("create")
@click.argument("name")
@click.option("--owner-name", default="owner", show_default=True, help="The owner user's name.")
@click.option(
    "--retention-days",
    type=RETENTION,
    default=365,
    show_default=True,
    help="Keep audit events this many days.",
)
@json_option
def create_tenant(name: str, owner_name: str, retention_days: int, as_json: bool) -> None:
    """Create the tenant NAME with an owner user and the owner's key (printed once)."""
    from musubi.audit.retention import check_retention
    from musubi.identity.bootstrap import provision_tenant

    async def work(state: AppState) -> tuple[dict[str, Any], str]:
        check_retention(retention_days, state.settings.audit_retention_min_days)
        async with state.db.transaction() as s:
            tenant, owner, token = await provision_tenant(
                s, name, owner_name=owner_name, retention_days=retention_days
            )
            return {**_out(tenant), "owner_user_id": owner.id}, token

    tenant, token = run_as_operator(work, system=True)
    if as_json:
        emit({**tenant, "owner_key": token}, as_json=True)
        return
    emit(tenant, as_json=False)
    click.echo(f"owner key (shown once, store it now): {token}")


@tenants.command("show")
@click.argument("tenant")
@json_option
def show_tenant(tenant: str, as_json: bool) -> None:
    """Show TENANT (id or name)."""
    from musubi.tenancy import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _out(await service.get_tenant(s, await _resolve(s, tenant)))

    emit(run_as_operator(work, system=True), as_json=as_json)


@tenants.command("update")
@click.argument("tenant")
@click.option("--name", default=None, help="New name.")
@click.option("--retention-days", type=RETENTION, default=None, help="Keep audit events N days.")
@json_option
def update_tenant(tenant: str, name: str | None, retention_days: int | None, as_json: bool) -> None:
    """Change TENANT (id or name)."""
    from musubi.tenancy import service

    changes = {
        k: v
        for k, v in {"name": name, "audit_retention_days": retention_days}.items()
        if v is not None
    }
    if not changes:
        raise click.UsageError("nothing to change: give --name and/or --retention-days")

    async def work(state: AppState) -> dict[str, Any]:
        from musubi.audit.retention import check_retention

        if retention_days is not None:
            check_retention(retention_days, state.settings.audit_retention_min_days)
        async with state.db.transaction() as s:
            return _out(await service.update_tenant(s, await _resolve(s, tenant), changes))

    emit(run_as_operator(work, system=True), as_json=as_json)


@tenants.command("delete")
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_tenant(tenant: str, yes: bool) -> None:
    """Delete TENANT (id or name) and all its data. The root tenant cannot be deleted.

    Its audit trail is kept until retention removes it.
    """
    from musubi.tenancy import service

    if not yes:
        click.confirm(f"Delete tenant {tenant!r} and all its data?", abort=True)

    async def work(state: AppState) -> str:
        async with state.db.transaction() as s:
            tenant_id = await _resolve(s, tenant)
            await service.delete_tenant(s, tenant_id)
        return tenant_id

    click.echo(f"deleted tenant {run_as_operator(work, system=True)}")
