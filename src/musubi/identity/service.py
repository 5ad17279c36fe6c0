"""Users, service accounts and API keys of the bound tenant; each change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.access.service import ensure_covers
from musubi.audit.service import record
from musubi.errors import InvalidInput, PermissionDenied
from musubi.identity import keys
from musubi.identity.models import ApiKey, User
from musubi.identity.owners import ensure_owner_key_remains, ensure_owner_remains
from musubi.storage.base import utcnow
from musubi.storage.queries import flush_unique, get_one
from musubi.tenancy.models import Project
from musubi.tenancy.service import apply_changes

__all__ = [
    "check_key_access",
    "check_user_access",
    "create_key",
    "create_user",
    "delete_user",
    "get_key",
    "get_user",
    "issue_key",
    "list_keys",
    "list_users",
    "revoke_key",
    "update_user",
    "visible_keys",
]

USER_KINDS = ("human", "service")


async def create_user(
    session: AsyncSession, name: str, *, display_name: str = "", kind: str = "human"
) -> User:
    if kind not in USER_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(USER_KINDS)}", field="kind")
    user = User(name=name, display_name=display_name, kind=kind)
    session.add(user)
    await flush_unique(session, "user", name)
    await record(session, "user.create", user.id, detail={"name": name, "kind": kind})
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.name))).all())


async def get_user(session: AsyncSession, user_id: str) -> User:
    return await get_one(session, User, user_id, "user")


async def check_user_access(session: AsyncSession, caller: Principal, user_id: str) -> None:
    """Whether ``caller`` may change, disable or delete ``user_id`` (or revoke their keys):
    ``users:write`` on the tenant, and at least the permissions that user holds."""
    if not caller.can("users:write"):
        raise PermissionDenied("users:write")
    await ensure_covers(
        session, caller, user_id, permission="users:write", action="act on this user"
    )


async def update_user(session: AsyncSession, user_id: str, changes: dict[str, Any]) -> User:
    user = await get_user(session, user_id)
    if changes.get("disabled") is True and not user.disabled:
        await ensure_owner_remains(session, user.id, change="disable this user")
    diff = apply_changes(user, changes)
    await flush_unique(session, "user", changes.get("name"))
    await record(session, "user.update", user.id, detail=diff)
    return user


async def delete_user(session: AsyncSession, user_id: str) -> None:
    user = await get_user(session, user_id)
    await ensure_owner_remains(session, user.id, change="delete this user")
    await session.delete(user)
    await record(session, "user.delete", user.id, detail={"name": user.name})


async def create_key(
    session: AsyncSession,
    user_id: str,
    *,
    name: str = "",
    project_id: str | None = None,
    expires_at: datetime | None = None,
    token: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the returned token is the only time the secret is ever seen."""
    await get_user(session, user_id)
    if project_id is not None:
        await get_one(session, Project, project_id, "project")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    new = keys.NewKey(token) if token else keys.generate()
    key = ApiKey(
        user_id=user_id,
        project_id=project_id,
        name=name,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        expires_at=expires_at,
    )
    session.add(key)
    await flush_unique(session, "key prefix", new.prefix)
    await record(
        session,
        "key.create",
        key.id,
        detail={"user_id": user_id, "project_id": project_id, "prefix": new.prefix},
    )
    return key, new.token


async def issue_key(
    session: AsyncSession,
    caller: Principal,
    user_id: str | None = None,
    *,
    name: str = "",
    project_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key as ``caller`` asks (``POST /v1/keys``, a bulk import). A project key
    mints only keys of its project; a key for someone else needs ``users:write`` on the
    tenant, and is never minted for a user holding more than the caller at any scope."""
    user_id = user_id or caller.user_id
    if caller.project_id is not None:
        if project_id not in (None, caller.project_id):
            raise PermissionDenied(
                "keys:write", "a project key can only create keys for its project"
            )
        project_id = caller.project_id
    if user_id != caller.user_id and not caller.can("users:write"):
        raise PermissionDenied("users:write")
    await ensure_covers(
        session, caller, user_id, permission="users:write", action="create a key for this user"
    )
    return await create_key(
        session, user_id, name=name, project_id=project_id, expires_at=expires_at
    )


def _own(caller: Principal, key: ApiKey) -> bool:
    """A key of the caller's own user (and, for a project key, of the same project)."""
    same_user = key.user_id == caller.user_id
    return same_user and (caller.project_id is None or key.project_id == caller.project_id)


async def check_key_access(
    session: AsyncSession, caller: Principal, key: ApiKey, *, write: bool
) -> None:
    """Whether ``caller`` may see (or revoke) ``key``: its own; anyone's with ``users:read``
    on the tenant; and revoking someone else's needs what acting on that user needs."""
    if _own(caller, key):
        return
    if not write:
        if not caller.can("users:read"):
            raise PermissionDenied("users:read")
        return
    await check_user_access(session, caller, key.user_id)


async def visible_keys(session: AsyncSession, caller: Principal) -> list[ApiKey]:
    """Every key for a caller with ``users:read`` on the tenant; else its own."""
    if caller.can("users:read"):
        return await list_keys(session)
    return [k for k in await list_keys(session, caller.user_id) if _own(caller, k)]


async def list_keys(session: AsyncSession, user_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list((await session.scalars(query)).all())


async def get_key(session: AsyncSession, key_id: str) -> ApiKey:
    return await get_one(session, ApiKey, key_id, "key")


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await get_key(session, key_id)
    if key.revoked_at is None:
        await ensure_owner_key_remains(session, key)
        key.revoked_at = utcnow()
        await record(session, "key.revoke", key.id, detail={"prefix": key.prefix})
    return key
