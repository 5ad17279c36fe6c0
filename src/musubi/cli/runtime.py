"""How a management command runs: open the database as an operator, as one tenant.

The CLI talks to the database directly (it is the operator's tool on the server host);
every change goes through the same service functions as the API, so it is audited the
same way, with the actor ``cli:<os user>``.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:  # imported when a command runs, so `musubi <group> --help` stays fast
    from musubi.runtime import AppState

__all__ = ["run_as_operator", "tenant_option"]

T = TypeVar("T")


def tenant_option(func: Callable[..., T]) -> Callable[..., T]:
    return click.option(
        "--tenant",
        "tenant",
        default=None,
        help="Tenant name or id (default: the root tenant).",
    )(func)


async def _resolve_tenant(state: AppState, tenant: str | None) -> str:
    from sqlalchemy import or_, select

    from musubi.context import system_scope
    from musubi.storage.tenants import Tenant

    with system_scope():
        async with state.db.read() as s:
            query = select(Tenant)
            if tenant is None:
                query = query.where(Tenant.is_root.is_(True))
            else:
                query = query.where(or_(Tenant.id == tenant, Tenant.name == tenant))
            found = await s.scalar(query)
    if found is None:
        raise click.ClickException(f"no tenant named or with id {tenant!r}")
    return found.id


def run_as_operator(
    work: Callable[[AppState], Awaitable[T]], *, tenant: str | None = None, system: bool = False
) -> T:
    """Run ``work`` bound to a tenant (or in system scope), mapping errors to exit codes."""

    from musubi.context import Actor, bind_actor, bind_tenant, system_scope
    from musubi.errors import MusubiError
    from musubi.runtime import open_state
    from musubi.settings import Settings

    async def main() -> T:
        state = await open_state(Settings())
        try:
            with bind_actor(Actor(f"cli:{getpass.getuser()}")):
                if system:
                    with system_scope():
                        return await work(state)
                tenant_id = await _resolve_tenant(state, tenant)
                with bind_tenant(tenant_id):
                    return await work(state)
        finally:
            await state.close()

    try:
        return asyncio.run(main())
    except MusubiError as exc:
        raise click.ClickException(exc.message) from exc
