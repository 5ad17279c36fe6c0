"""Create, list and delete quota policies of the bound tenant; each change is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.errors import InvalidInput
from musubi.identity.models import ApiKey
from musubi.quotas.models import LIMITS, QuotaPolicy
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project, Team

__all__ = ["delete_policy", "list_policies", "set_policy"]

_SCOPES: dict[str, tuple[type[Any], str] | None] = {
    "tenant": None,
    "team": (Team, "team"),
    "project": (Project, "project"),
    "key": (ApiKey, "key"),
}


async def set_policy(
    session: AsyncSession, scope: str, scope_id: str, limits: dict[str, float | None]
) -> QuotaPolicy:
    """Create or replace the policy of one scope (limits not given are removed)."""
    if scope not in _SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(_SCOPES)}", field="scope")
    target = _SCOPES[scope]
    if target is None:
        scope_id = ""
    else:
        await get_one(session, target[0], scope_id, target[1])  # must be this tenant's
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise InvalidInput(f"unknown limits: {', '.join(sorted(unknown))}", field="limits")
    policy = await session.scalar(
        select(QuotaPolicy).where(QuotaPolicy.scope == scope, QuotaPolicy.scope_id == scope_id)
    )
    if policy is None:
        policy = QuotaPolicy(scope=scope, scope_id=scope_id)
        session.add(policy)
    for name in LIMITS:
        setattr(policy, name, limits.get(name))
    await session.flush()
    await record(
        session,
        "quota.set",
        policy.id,
        detail={"scope": scope, "scope_id": scope_id, **{k: v for k, v in limits.items()}},
    )
    return policy


async def list_policies(session: AsyncSession) -> list[QuotaPolicy]:
    query = select(QuotaPolicy).order_by(QuotaPolicy.scope, QuotaPolicy.scope_id)
    return list((await session.scalars(query)).all())


async def delete_policy(session: AsyncSession, policy_id: str) -> None:
    policy = await get_one(session, QuotaPolicy, policy_id, "quota policy")
    await session.delete(policy)
    await record(
        session,
        "quota.delete",
        policy.id,
        detail={"scope": policy.scope, "scope_id": policy.scope_id},
    )
