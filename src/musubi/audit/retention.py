"""Retention: remove each tenant's events older than its ``audit_retention_days``."""

from __future__ import annotations

from sqlalchemy import select

from musubi.audit.models import AuditHead
from musubi.audit.service import purge, record
from musubi.storage.database import Database
from musubi.tenancy.context import system_scope
from musubi.tenancy.models import Tenant

__all__ = ["purge_all"]

DEFAULT_DAYS = 365


async def purge_all(db: Database, default_days: int = DEFAULT_DAYS) -> dict[str, int]:
    """Purge every chain (deleted tenants' and the system chain use ``default_days``).

    Returns {tenant_id: events removed} for the chains that lost events.
    """
    removed: dict[str, int] = {}
    with system_scope():
        async with db.read() as s:
            chains = list((await s.scalars(select(AuditHead.tenant_id))).all())
            days = {t.id: t.audit_retention_days for t in (await s.scalars(select(Tenant))).all()}
        for tenant_id in chains:
            async with db.transaction() as s:
                n = await purge(s, tenant_id, days.get(tenant_id, default_days))
                if n:
                    await record(
                        s, "audit.purge", tenant_id, tenant_id=tenant_id, detail={"removed": n}
                    )
                    removed[tenant_id] = n
    return removed
