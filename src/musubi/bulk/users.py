"""Bulk users: create or update by ``name`` (a login name or e-mail address).

Columns: ``name`` (or ``email``, checked to look like an address), ``display_name``,
``kind`` (human | service, set at creation only), ``disabled`` (true | false).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.bulk.base import Caller, Kind, Outcome
from musubi.errors import InvalidInput
from musubi.identity import service
from musubi.identity.models import User

__all__ = ["USERS"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    display_name: str = Field(default="", max_length=200)
    kind: Literal["human", "service"] = "human"
    disabled: bool = False

    @model_validator(mode="before")
    @classmethod
    def _email_is_the_name(cls, data: Any) -> Any:
        """An ``email`` column instead of ``name``: the address, checked, is the name.

        Raises InvalidInput (pydantic passes it through) so the error names ``email``.
        """
        if not isinstance(data, dict) or "email" not in data:
            return data
        data = dict(data)
        email = data.pop("email")
        if "name" in data:
            raise InvalidInput("give name or email, not both", field="email")
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise InvalidInput(f"email {email!r} is not an e-mail address", field="email")
        return {**data, "name": email}


async def _apply(session: AsyncSession, caller: Caller, item: UserItem) -> Outcome:
    user = await session.scalar(select(User).where(User.name == item.name))
    if user is None:
        user = await service.create_user(
            session, item.name, display_name=item.display_name, kind=item.kind
        )
        if item.disabled:
            await service.update_user(session, user.id, {"disabled": True})
        return Outcome("created", user.id)
    given = item.model_fields_set
    if "kind" in given and item.kind != user.kind:
        raise InvalidInput(f"kind cannot be changed (user is {user.kind!r})", field="kind")
    changes: dict[str, Any] = {
        f: getattr(item, f)
        for f in ("display_name", "disabled")
        if f in given and getattr(item, f) != getattr(user, f)
    }
    if not changes:
        return Outcome("unchanged", user.id)
    if caller.principal is not None:  # as PATCH /v1/users/{id}: not on a stronger user
        await service.check_user_access(session, caller.principal, user.id)
    await service.update_user(session, user.id, changes)
    return Outcome("updated", user.id)


async def _export(session: AsyncSession, caller: Caller) -> list[dict[str, Any]]:
    caller.check("users:read")
    return [
        {"name": u.name, "display_name": u.display_name, "kind": u.kind, "disabled": u.disabled}
        for u in await service.list_users(session)
    ]


USERS = Kind(
    name="users",
    read="users:read",
    write="users:write",
    item=UserItem,
    columns=("name", "display_name", "kind", "disabled"),
    apply=_apply,
    export=_export,
    tenant_wide_write=True,
)
