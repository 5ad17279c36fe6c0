"""``musubi users list|create|show|update|delete``: people and service accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.identity.models import User
    from musubi.runtime import AppState

__all__ = ["resolve_user", "users"]

COLUMNS = ("id", "name", "display_name", "kind", "disabled", "created_at")


async def resolve_user(session: AsyncSession, value: str) -> str:
    """The id of the bound tenant's user whose id or name is ``value``."""
    from sqlalchemy import or_, select

    from musubi.errors import NotFound
    from musubi.identity.models import User

    found = await session.scalar(select(User.id).where(or_(User.id == value, User.name == value)))
    if found is None:
        raise NotFound(f"user {value!r} not found", model=User, id=value)
    return found


def _out(user: User) -> dict[str, Any]:
    from musubi.api.schemas import UserOut

    return UserOut.model_validate(user).model_dump(mode="json")


@click.group()
def users() -> None:
    """Manage the users and service accounts of a tenant (default: the root tenant)."""


@users.command("list")
@tenant_option
@json_option
def list_users(tenant: str | None, as_json: bool) -> None:
    """List users and service accounts."""
    from musubi.identity import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [_out(u) for u in await service.list_users(s)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@users.command("create")
@click.argument("name")
@click.option("--display-name", default="", help="Name shown to people.")
@click.option(
    "--kind",
    type=click.Choice(["human", "service"]),
    default="human",
    show_default=True,
    help="A person, or a service account for automation.",
)
@tenant_option
@json_option
def create_user(name: str, display_name: str, kind: str, tenant: str | None, as_json: bool) -> None:
    """Create a user called NAME (a login name or e-mail). It holds no role yet."""
    from musubi.identity import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _out(await service.create_user(s, name, display_name=display_name, kind=kind))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@users.command("show")
@click.argument("user")
@tenant_option
@json_option
def show_user(user: str, tenant: str | None, as_json: bool) -> None:
    """Show USER (id or name)."""
    from musubi.identity import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.read() as s:
            return _out(await service.get_user(s, await resolve_user(s, user)))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@users.command("update")
@click.argument("user")
@click.option("--display-name", default=None, help="New display name.")
@click.option(
    "--disable/--enable",
    "disabled",
    default=None,
    help="Disable or re-enable the user (a disabled user's keys are refused).",
)
@tenant_option
@json_option
def update_user(
    user: str, display_name: str | None, disabled: bool | None, tenant: str | None, as_json: bool
) -> None:
    """Change or disable USER (id or name)."""
    from musubi.identity import service

    changes: dict[str, Any] = {
        k: v
        for k, v in {"display_name": display_name, "disabled": disabled}.items()
        if v is not None
    }
    if not changes:
        raise click.UsageError("nothing to change: give --display-name, --disable or --enable")

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return _out(await service.update_user(s, await resolve_user(s, user), changes))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@users.command("delete")
@click.argument("user")
@tenant_option
def delete_user(user: str, tenant: str | None) -> None:
    """Delete USER (id or name), their keys and role assignments."""
    from musubi.identity import service

    async def work(state: AppState) -> str:
        async with state.db.transaction() as s:
            user_id = await resolve_user(s, user)
            await service.delete_user(s, user_id)
        return user_id

    click.echo(f"deleted user {run_as_operator(work, tenant=tenant)}")
