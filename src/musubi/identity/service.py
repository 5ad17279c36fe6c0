"""Users, service accounts and API keys of the bound tenant; each change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.errors import InvalidInput
from musubi.identity import keys
from musubi.identity.models import ApiKey, User
from musubi.storage.base import utcnow
from musubi.storage.queries import flush_unique, get_one
from musubi.tenancy.models import Project
from musubi.tenancy.service import apply_changes

__all__ = [
    "create_key",
    "create_user",
    "delete_user",
    "get_key",
    "get_user",
    "list_keys",
    "list_users",
    "revoke_key",
    "update_user",
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


async def update_user(session: AsyncSession, user_id: str, changes: dict[str, Any]) -> User:
    user = await get_user(session, user_id)
    diff = apply_changes(user, changes)
    await flush_unique(session, "user", changes.get("name"))
    await record(session, "user.update", user.id, detail=diff)
    return user


async def delete_user(session: AsyncSession, user_id: str) -> None:
    user = await get_user(session, user_id)
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
        key.revoked_at = utcnow()
        await record(session, "key.revoke", key.id, detail={"prefix": key.prefix})
    return key
