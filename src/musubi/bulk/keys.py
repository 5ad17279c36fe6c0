"""Bulk API keys: create only. Each row makes a new key; its secret is in the report, once.

Columns: ``user`` (id or name), ``name``, ``project`` (id or name; empty: not restricted),
``expires_at`` (ISO 8601; empty: never). The export lists active keys, with their
``prefix`` for reference (ignored on import), and never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.bulk.base import BlankIsNone, Caller, Kind, Outcome, Ref, names, resolve
from musubi.identity import service
from musubi.identity.models import User
from musubi.tenancy.models import Project

__all__ = ["KEYS"]


class KeyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    project: Ref = Field(default=None, max_length=200)
    expires_at: Annotated[datetime | None, BlankIsNone] = None


async def _apply(session: AsyncSession, caller: Caller, item: KeyItem) -> Outcome:
    user_id = await resolve(session, User, item.user)
    project_id = None if item.project is None else await resolve(session, Project, item.project)
    if caller.principal is None:  # the CLI: the operator
        key, token = await service.create_key(
            session, user_id, name=item.name, project_id=project_id, expires_at=item.expires_at
        )
    else:  # the rule of POST /v1/keys
        key, token = await service.issue_key(
            session,
            caller.principal,
            user_id,
            name=item.name,
            project_id=project_id,
            expires_at=item.expires_at,
        )
    return Outcome("created", key.id, token=token)


async def _export(session: AsyncSession, caller: Caller) -> list[dict[str, Any]]:
    p = caller.principal  # the same visibility as GET /v1/keys
    keys = await service.list_keys(session) if p is None else await service.visible_keys(session, p)
    users, projects = await names(session, User), await names(session, Project)
    return [
        {
            "user": users[k.user_id],
            "name": k.name,
            "project": projects.get(k.project_id or "", ""),
            "expires_at": k.expires_at.isoformat() if k.expires_at else "",
            "prefix": k.prefix,
        }
        for k in keys
        if k.state == "active"
    ]


KEYS = Kind(
    name="keys",
    read="keys:read",
    write="keys:write",
    item=KeyItem,
    columns=("user", "name", "project", "expires_at", "prefix"),
    apply=_apply,
    export=_export,
    read_only=("prefix",),
)
