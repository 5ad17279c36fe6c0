"""``musubi keys list|create|show|revoke``: API keys. A key's secret is shown once, at create."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.identity.models import ApiKey
    from musubi.runtime import AppState

__all__ = ["keys"]

COLUMNS = ("id", "user_id", "name", "prefix", "state", "expires_at")


def _out(key: ApiKey) -> dict[str, Any]:
    from musubi.api.schemas import KeyOut

    return KeyOut.model_validate(key).model_dump(mode="json")


@click.group()
def keys() -> None:
    """Manage the API keys of a tenant (default: the root tenant)."""


@keys.command("list")
@click.option("--user", default=None, help="Only this user's keys (id or name).")
@tenant_option
@json_option
def list_keys(user: str | None, tenant: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    from musubi.cli.users import resolve_user
    from musubi.identity import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            user_id = None if user is None else await resolve_user(s, user)
            return [_out(k) for k in await service.list_keys(s, user_id)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@keys.command("create")
@click.option("--user", required=True, help="The user the key acts as (id or name).")
@click.option("--name", default="", help="A label for the key.")
@click.option("--project", default=None, help="Restrict the key to this project (id or name).")
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=1),
    default=None,
    help="Expire the key after this many days (default: never).",
)
@tenant_option
@json_option
def create_key(
    user: str,
    name: str,
    project: str | None,
    expires_in_days: int | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Create a key. Its token is printed once: store it now."""
    from datetime import timedelta

    from musubi.cli.projects import resolve_project
    from musubi.cli.users import resolve_user
    from musubi.identity import service
    from musubi.storage.base import utcnow

    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)

    async def work(state: AppState) -> tuple[dict[str, Any], str]:
        async with state.db.transaction() as s:
            user_id = await resolve_user(s, user)
            project_id = None if project is None else await resolve_project(s, project)
            key, token = await service.create_key(
                s, user_id, name=name, project_id=project_id, expires_at=expires_at
            )
        return _out(key), token

    key, token = run_as_operator(work, tenant=tenant)
    if as_json:
        emit({**key, "token": token}, as_json=True)
        return
    emit(key, as_json=False)
    click.echo(f"token (shown once, store it now): {token}")


@keys.command("show")
@click.argument("key_id")
@tenant_option
@json_option
def show_key(key_id: str, tenant: str | None, as_json: bool) -> None:
    """Show the key KEY_ID."""
    from musubi.identity import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _out(await service.get_key(s, key_id))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@keys.command("revoke")
@click.argument("key_id")
@tenant_option
@json_option
def revoke_key(key_id: str, tenant: str | None, as_json: bool) -> None:
    """Revoke the key KEY_ID (it is kept, marked revoked)."""
    from musubi.identity import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _out(await service.revoke_key(s, key_id))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)
