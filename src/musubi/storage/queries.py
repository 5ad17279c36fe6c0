"""Small query helpers shared by every area's service module."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.errors import Conflict, NotFound

__all__ = ["flush_unique", "get_one"]

T = TypeVar("T")


async def get_one(session: AsyncSession, model: type[T], id_: str, what: str) -> T:
    """The row of the bound tenant with this id, or :class:`NotFound`.

    Another tenant's row is indistinguishable from a missing one here; the API layer
    checks afterwards (outside this tenant's scope) whether it was a cross-tenant attempt,
    to audit it.
    """
    obj = await session.get(model, id_)
    if obj is None:
        raise NotFound(f"{what} {id_!r} not found", model=model, id=id_)
    return obj


async def flush_unique(session: AsyncSession, what: str, name: Any) -> None:
    """Flush, turning a unique-constraint clash into :class:`Conflict` naming the value."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a {what} named {name!r} already exists", field="name") from exc
