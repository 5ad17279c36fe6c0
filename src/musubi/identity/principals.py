"""The :class:`Principal` of an API key or of a user: who acts, on which tenant, holding what.

What a user holds comes from their role assignments (:func:`musubi.access.service.holdings`);
authentication (:mod:`musubi.identity.auth`) builds one per key and per browser session.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.access.service import holdings
from musubi.identity.models import ApiKey, User
from musubi.storage.tenants import Tenant
from musubi.tenancy.models import Project

__all__ = ["principal_for_key", "principal_for_user"]


async def principal_for_key(session: AsyncSession, key: ApiKey) -> Principal | None:
    """The principal of a key (run in the key's tenant scope); None if its user is disabled."""
    user = await session.get(User, key.user_id)
    tenant = await session.get(Tenant, key.tenant_id)
    if user is None or tenant is None:
        return None
    return await principal_for_user(
        session,
        user,
        tenant,
        actor=f"key:msk_{key.prefix}",
        key_id=key.id,
        project_id=key.project_id,
    )


async def principal_for_user(
    session: AsyncSession,
    user: User,
    tenant: Tenant,
    *,
    actor: str,
    key_id: str | None = None,
    project_id: str | None = None,
) -> Principal | None:
    """The principal of ``user`` (a key's or a browser session's); None if disabled."""
    if user.disabled:
        return None
    held = await holdings(session, user.id)
    project_team_id = None
    if project_id is not None:
        project = await session.get(Project, project_id)
        project_team_id = project.team_id if project else None
    return Principal(
        tenant_id=tenant.id,
        user_id=user.id,
        actor=actor,
        key_id=key_id,
        is_root_tenant=tenant.is_root,
        project_id=project_id,
        project_team_id=project_team_id,
        tenant_perms=held.tenant,
        team_perms=held.teams,
        project_perms=held.projects,
    )
