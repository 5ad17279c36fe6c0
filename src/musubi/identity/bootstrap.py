"""First start: an empty database gets a root tenant, an owner and the owner's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from musubi.context import bind_tenant, system_scope
from musubi.storage.database import Database
from musubi.storage.migrate import startup_lock
from musubi.storage.tenants import Tenant

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.identity.models import User

__all__ = ["Bootstrap", "bootstrap", "provision_tenant"]


@dataclass
class Bootstrap:
    tenant_id: str
    user_id: str
    key: str | None  # the owner key, set only when it was generated now (shown once)


async def provision_tenant(
    session: AsyncSession,
    name: str,
    *,
    is_root: bool = False,
    owner_name: str = "owner",
    key: str | None = None,
    retention_days: int = 365,
) -> tuple[Tenant, User, str]:
    """A tenant with an owner user and the owner's key, in the caller's transaction.

    Run in system scope; the owner is created as the new tenant, so every row and audit
    event lands in that tenant. Returns the tenant, the owner and the key token.
    """
    # Imported here: every process start runs bootstrap(), which usually finds the tenant
    # and creates nothing, so a management command does not load the identity services.
    from musubi.identity.roles import assign_role
    from musubi.identity.service import create_key, create_user
    from musubi.tenancy.service import create_tenant

    tenant = await create_tenant(
        session, name, is_root=is_root, audit_retention_days=retention_days
    )
    with bind_tenant(tenant.id):
        owner = await create_user(session, owner_name, display_name="Owner")
        await assign_role(session, owner.id, "owner")
        _, token = await create_key(session, owner.id, name=f"{owner_name} key", token=key)
    return tenant, owner, token


async def bootstrap(
    db: Database, *, key: str | None = None, tenant_name: str = "default", retention_days: int = 365
) -> Bootstrap | None:
    """Create the root tenant and its owner if there is no tenant yet; else do nothing.

    Processes starting together take turns (:func:`startup_lock`), so exactly one of them
    creates the tenant and the others find it.
    """
    with system_scope():
        async with startup_lock(db), db.transaction() as session:
            if await session.scalar(select(Tenant.id).limit(1)) is not None:
                return None
            tenant, owner, token = await provision_tenant(
                session, tenant_name, is_root=True, key=key, retention_days=retention_days
            )
    return Bootstrap(tenant.id, owner.id, None if key else token)
