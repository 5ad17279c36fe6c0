"""A 404 on an object id, audited without telling whether the id is another tenant's.

The caller's own log gets the same ``access.not_found`` event for every id it asked for
and did not find, whether the id is unknown everywhere or belongs to another tenant: a
tenant admin reading its log cannot use it to learn that an id exists elsewhere. Whether
it does is checked apart, and a real cross-tenant attempt is recorded as
``security.cross_tenant`` in the operator's log (the ``_system`` chain, which no tenant
reads), naming the caller's tenant. The API runs that check after the answer is sent,
so the answer's timing does not depend on it either.
"""

from __future__ import annotations

from typing import Any

from musubi.audit.service import record
from musubi.context import SYSTEM_TENANT, Actor, bind_actor, system_scope
from musubi.errors import NotFound
from musubi.storage.database import Database

__all__ = ["NOT_FOUND", "missing_object", "record_if_cross_tenant"]

NOT_FOUND = "access.not_found"


def missing_object(exc: NotFound) -> tuple[type, str] | None:
    """The (model, id) a NotFound names, if it names one."""
    model, id_ = exc.detail.get("model"), exc.detail.get("id")
    if isinstance(model, type) and isinstance(id_, str):
        return model, id_
    return None


async def record_if_cross_tenant(
    db: Database,
    model: type,
    id_: str,
    *,
    tenant_id: str,
    actor: Actor,
    detail: dict[str, Any] | None = None,
) -> bool:
    """If ``id_`` exists (in another tenant: the caller did not find it in its own), record
    the attempt in the operator's log. Returns whether it did."""
    with system_scope():
        async with db.read() as session:
            found: object | None = await session.get(model, id_)
        if found is None:
            return False
        with bind_actor(actor):
            async with db.transaction() as session:
                await record(
                    session,
                    "security.cross_tenant",
                    id_,
                    outcome="denied",
                    detail={"tenant_id": tenant_id, **(detail or {})},
                    tenant_id=SYSTEM_TENANT,
                )
    return True
