"""A tenant never loses its last owner, nor its owners their last way in.

Every path that can take an owner away (deleting or disabling a user through the API,
SCIM or a bulk import; removing the ``owner`` role by hand or by an SSO mapping) calls
:func:`ensure_owner_remains` before making the change; revoking a key calls
:func:`ensure_owner_key_remains` (the last working key of the owners, with no identity
provider to log in with instead, stays). Requiring SSO without an IdP is refused in
:mod:`musubi.sso.idps`. The tenant's row is locked first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers anyway), so two
requests removing the two last owners at once cannot both pass the count.

The rule reads role assignments (:mod:`musubi.access`), users, keys and identity providers,
so it lives here, above access.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.models import RoleAssignment
from musubi.context import current_tenant_id
from musubi.errors import Conflict
from musubi.identity.models import ApiKey, User
from musubi.identity.sign_in import IdpConfig
from musubi.storage.base import utcnow
from musubi.storage.tenants import Tenant

__all__ = ["OWNER", "LastOwner", "ensure_owner_key_remains", "ensure_owner_remains", "is_owner"]

OWNER = "owner"


class LastOwner(Conflict):
    """The change would leave the tenant with no enabled owner."""


def _owner_of_tenant() -> ColumnElement[bool]:
    return and_(RoleAssignment.role == OWNER, RoleAssignment.scope == "tenant")


async def is_owner(session: AsyncSession, user_id: str) -> bool:
    """Whether ``user_id`` holds the built-in owner role on the whole tenant."""
    found = await session.scalar(
        select(RoleAssignment.id).where(RoleAssignment.user_id == user_id, _owner_of_tenant())
    )
    return found is not None


async def _lock_tenant(session: AsyncSession) -> None:
    tenant_id = current_tenant_id()
    if tenant_id is not None:
        await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


async def ensure_owner_remains(session: AsyncSession, user_id: str, *, change: str) -> None:
    """Refuse ``change`` (said in the message) if ``user_id`` is the tenant's last enabled
    owner. Call it before deleting or disabling the user or removing its owner role."""
    await _lock_tenant(session)
    if not await is_owner(session, user_id):
        return
    user = await session.get(User, user_id)
    if user is None or user.disabled:
        return  # a disabled owner is no owner to lose
    others = await session.scalar(
        select(func.count())
        .select_from(RoleAssignment)
        .join(User, User.id == RoleAssignment.user_id)
        .where(_owner_of_tenant(), RoleAssignment.user_id != user_id, User.disabled.is_(False))
    )
    if not others:
        raise LastOwner(
            f"cannot {change}: this is the tenant's last owner; make another user owner first",
            field="user_id",
        )


async def ensure_owner_key_remains(session: AsyncSession, key: ApiKey) -> None:
    """Refuse revoking ``key`` if it is the last working key of the tenant's enabled owners
    and no enabled identity provider offers another way in."""
    await _lock_tenant(session)
    if not await is_owner(session, key.user_id):
        return
    now = utcnow()
    others = await session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .join(User, User.id == ApiKey.user_id)
        .join(RoleAssignment, RoleAssignment.user_id == ApiKey.user_id)
        .where(
            _owner_of_tenant(),
            User.disabled.is_(False),
            ApiKey.id != key.id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    if others:
        return
    if await session.scalar(select(IdpConfig.id).where(IdpConfig.enabled.is_(True))):
        return
    raise LastOwner(
        "cannot revoke this key: it is the last working key of the tenant's owners and no "
        "identity provider is set up to log in with; create another owner key first",
        field="key_id",
    )
