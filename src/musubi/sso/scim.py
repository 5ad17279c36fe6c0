"""SCIM 2.0 (RFC 7643/7644) provisioning of the bound tenant's human users and groups.

Resources are plain dicts in and out (unit-testable without HTTP). Deprovisioning
(``active: false`` or DELETE) disables or deletes the user and revokes every browser
session in the same transaction; the caller then invalidates the auth cache, so keys and
sessions stop working before the response is sent. Service accounts are invisible here:
an IdP provisions people, never MUSUBI's own machine identities.

Owners are out of SCIM's reach unless the tenant's SSO policy sets
``scim_manages_owners``: a change to an owner (rename, deactivate, delete) is refused with
403, so a leaked provisioning key cannot take the tenant away from its owners. Sending an
owner's current values again (an IdP's periodic sync) is not a change and is accepted.
Even when SCIM may manage owners, the last enabled owner is never deactivated or deleted
(:mod:`musubi.identity.owners`).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from musubi.identity import service as identity
from musubi.identity.models import User
from musubi.identity.owners import ensure_owner_remains, is_owner
from musubi.sso.models import ScimGroup, ScimMember
from musubi.sso.sessions import get_policy, revoke_user_sessions
from musubi.storage.queries import flush_unique

__all__ = [
    "ERROR_SCHEMA",
    "LIST_SCHEMA",
    "ScimError",
    "create_group",
    "create_user",
    "delete_group",
    "delete_user",
    "get_group",
    "get_user",
    "group_resource",
    "list_groups",
    "list_users",
    "parse_filter",
    "patch_group",
    "patch_user",
    "replace_user",
    "user_resource",
]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

_FILTER = re.compile(r'^\s*([A-Za-z.]+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^members\[value eq "([^"]+)"\]$', re.IGNORECASE)


class ScimError(InvalidInput):
    """A request SCIM itself defines as bad (``scimType`` per RFC 7644 §3.12)."""

    def __init__(self, message: str, scim_type: str) -> None:
        super().__init__(message, field=scim_type)
        self.scim_type = scim_type


def parse_filter(text: str | None, attributes: dict[str, Any]) -> Any:
    """``attr eq "value"`` to a SQL condition; other filters are refused, not ignored."""
    if not text:
        return None
    m = _FILTER.match(text)
    if m is None:
        raise ScimError(f'unsupported filter {text!r}: use attr eq "value"', "invalidFilter")
    attr, value = m.group(1), m.group(2).replace('\\"', '"')
    column = next((c for a, c in attributes.items() if a.lower() == attr.lower()), None)
    if column is None:
        raise ScimError(f"cannot filter on {attr!r}", "invalidFilter")
    return column == value


def _meta(kind: str, obj: Any) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": obj.created_at.isoformat(),
        "lastModified": obj.updated_at.isoformat(),
        "location": f"/scim/v2/{kind}s/{obj.id}",
    }


def user_resource(user: User) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "id": user.id,
        "userName": user.name,
        "displayName": user.display_name,
        "active": not user.disabled,
        "meta": _meta("User", user),
    }


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None or user.kind != "human":
        raise NotFound(f"user {user_id!r} not found", model=User, id=user_id)
    return user


async def list_users(session: AsyncSession, filter_: str | None) -> list[User]:
    query = select(User).where(User.kind == "human").order_by(User.created_at)
    cond = parse_filter(
        filter_, {"userName": User.name, "displayName": User.display_name, "id": User.id}
    )
    if cond is not None:
        query = query.where(cond)
    return list((await session.scalars(query)).all())


def _user_fields(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("userName")
    if not isinstance(name, str) or not name.strip():
        raise ScimError("userName is required", "invalidValue")
    active = body.get("active", True)
    if not isinstance(active, bool):
        raise ScimError("active must be a boolean", "invalidValue")
    return {"name": name, "display_name": str(body.get("displayName") or ""), "active": active}


async def create_user(session: AsyncSession, body: dict[str, Any]) -> User:
    fields = _user_fields(body)
    try:
        user = await identity.create_user(
            session, fields["name"], display_name=fields["display_name"]
        )
    except Conflict as exc:
        raise ScimError(f"userName {fields['name']!r} is taken", "uniqueness") from exc
    if not fields["active"]:
        await _set_active(session, user, False)
    return user


async def _may_change(session: AsyncSession, user: User) -> None:
    """Refuse a change to an owner unless the SSO policy lets SCIM manage owners."""
    if await is_owner(session, user.id) and not (await get_policy(session)).scim_manages_owners:
        raise PermissionDenied(
            "scim:provision",
            f"user {user.id!r} is an owner of the tenant; SCIM changes owners only when the "
            "SSO policy's scim_manages_owners is on",
        )


async def _set_active(session: AsyncSession, user: User, active: bool) -> None:
    if user.disabled == (not active):
        return
    await _may_change(session, user)
    if not active:
        await ensure_owner_remains(session, user.id, change="deactivate this user")
    user.disabled = not active
    await record(session, "scim.user.active", user.id, detail={"active": active})
    if not active:
        await revoke_user_sessions(session, user.id, reason="deprovisioned by SCIM")


async def replace_user(session: AsyncSession, user_id: str, body: dict[str, Any]) -> User:
    user = await get_user(session, user_id)
    fields = _user_fields(body)
    await _rename(session, user, {"name": fields["name"], "display_name": fields["display_name"]})
    await _set_active(session, user, fields["active"])
    return user


def _ops(body: dict[str, Any]) -> list[dict[str, Any]]:
    if PATCH_SCHEMA not in body.get("schemas", []):
        raise ScimError(f"a PATCH body needs the schema {PATCH_SCHEMA}", "invalidSyntax")
    ops = body.get("Operations")
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise ScimError("Operations must be a list of objects", "invalidSyntax")
    return ops


async def patch_user(session: AsyncSession, user_id: str, body: dict[str, Any]) -> User:
    user = await get_user(session, user_id)
    for op in _ops(body):
        kind = str(op.get("op", "")).lower()
        if kind not in ("replace", "add"):
            raise ScimError(f"unsupported op {op.get('op')!r} on a user", "invalidValue")
        path, value = op.get("path"), op.get("value")
        changes = {path: value} if isinstance(path, str) else value
        if not isinstance(changes, dict):
            raise ScimError("a replace without a path needs an object value", "invalidValue")
        for attr, v in changes.items():
            if attr == "active":
                active = v if isinstance(v, bool) else str(v).lower() == "true"
                await _set_active(session, user, active)
            elif attr in ("displayName", "userName"):
                field = "display_name" if attr == "displayName" else "name"
                await _rename(session, user, {field: str(v)})
            else:
                raise ScimError(f"cannot change {attr!r}", "invalidPath")
    return user


async def _rename(session: AsyncSession, user: User, changes: dict[str, str]) -> None:
    if any(getattr(user, k) != v for k, v in changes.items()):
        await _may_change(session, user)
    await identity.update_user(session, user.id, changes)


async def delete_user(session: AsyncSession, user_id: str) -> None:
    user = await get_user(session, user_id)
    await _may_change(session, user)
    await revoke_user_sessions(session, user.id, reason="deleted by SCIM")
    await identity.delete_user(session, user.id)


# -- groups ---------------------------------------------------------------------------------


async def _members(session: AsyncSession, group_id: str) -> list[User]:
    query = select(User).join(ScimMember, ScimMember.user_id == User.id)
    query = query.where(ScimMember.group_id == group_id).order_by(User.name)
    return list((await session.scalars(query)).all())


async def group_resource(session: AsyncSession, group: ScimGroup) -> dict[str, Any]:
    members = await _members(session, group.id)
    return {
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.display_name,
        "externalId": group.external_id,
        "members": [{"value": u.id, "display": u.name, "type": "User"} for u in members],
        "meta": _meta("Group", group),
    }


async def get_group(session: AsyncSession, group_id: str) -> ScimGroup:
    group = await session.get(ScimGroup, group_id)
    if group is None:
        raise NotFound(f"group {group_id!r} not found", model=ScimGroup, id=group_id)
    return group


async def list_groups(session: AsyncSession, filter_: str | None) -> list[ScimGroup]:
    query = select(ScimGroup).order_by(ScimGroup.display_name)
    attrs = {"displayName": ScimGroup.display_name, "externalId": ScimGroup.external_id}
    cond = parse_filter(filter_, {**attrs, "id": ScimGroup.id})
    if cond is not None:
        query = query.where(cond)
    return list((await session.scalars(query)).all())


async def _add_members(session: AsyncSession, group: ScimGroup, values: Any) -> None:
    if not isinstance(values, list):
        raise ScimError("members must be a list", "invalidValue")
    current = {u.id for u in await _members(session, group.id)}
    for item in values:
        user_id = item.get("value") if isinstance(item, dict) else None
        if not isinstance(user_id, str):
            raise ScimError("each member needs a value (a user id)", "invalidValue")
        await get_user(session, user_id)  # another tenant's user: 404
        if user_id not in current:
            session.add(ScimMember(group_id=group.id, user_id=user_id))
            current.add(user_id)
            await record(session, "scim.group.add_member", group.id, detail={"user": user_id})


async def _remove_member(session: AsyncSession, group: ScimGroup, user_id: str) -> None:
    await session.execute(
        delete(ScimMember)
        .where(ScimMember.group_id == group.id, ScimMember.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    await record(session, "scim.group.remove_member", group.id, detail={"user": user_id})


async def create_group(session: AsyncSession, body: dict[str, Any]) -> ScimGroup:
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise ScimError("displayName is required", "invalidValue")
    group = ScimGroup(display_name=name, external_id=body.get("externalId"))
    session.add(group)
    try:
        await flush_unique(session, "group", name)
    except Conflict as exc:
        raise ScimError(f"a group named {name!r} exists", "uniqueness") from exc
    await record(session, "scim.group.create", group.id, detail={"displayName": name})
    await _add_members(session, group, body.get("members", []))
    await session.flush()
    return group


async def patch_group(session: AsyncSession, group_id: str, body: dict[str, Any]) -> ScimGroup:
    group = await get_group(session, group_id)
    for op in _ops(body):
        kind, path, value = str(op.get("op", "")).lower(), op.get("path"), op.get("value")
        member = _MEMBER_PATH.match(path) if isinstance(path, str) else None
        if kind == "add" and path == "members":
            await _add_members(session, group, value)
        elif kind == "remove" and member is not None:
            await _remove_member(session, group, member.group(1))
        elif kind == "remove" and path == "members" and isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("value"), str):
                    await _remove_member(session, group, item["value"])
        elif kind == "replace" and path == "members":
            for user in await _members(session, group.id):
                await _remove_member(session, group, user.id)
            await _add_members(session, group, value)
        elif kind == "replace" and (path == "displayName" or isinstance(value, dict)):
            name = value.get("displayName") if isinstance(value, dict) else value
            if not isinstance(name, str) or not name:
                raise ScimError("displayName must be a non-empty string", "invalidValue")
            await record(
                session, "scim.group.rename", group.id, detail={"from": group.display_name}
            )
            group.display_name = name
        else:
            raise ScimError(f"unsupported operation {kind} {path!r} on a group", "invalidPath")
    await session.flush()
    return group


async def delete_group(session: AsyncSession, group_id: str) -> None:
    group = await get_group(session, group_id)
    await session.delete(group)
    await record(session, "scim.group.delete", group.id, detail={"name": group.display_name})
