"""Small query helpers shared by every area's service module."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.errors import Conflict, InvalidInput, NotFound

__all__ = ["flush_unique", "get_one", "newest_first"]

T = TypeVar("T")


async def get_one(
    session: AsyncSession, model: type[T], id_: str, what: str, *, lock: bool = False
) -> T:
    """The row of the bound tenant with this id, or :class:`NotFound`; with ``lock``, the
    row is locked until the transaction ends (``FOR UPDATE``, on PostgreSQL).

    Another tenant's row is indistinguishable from a missing one here; the API layer
    checks afterwards (outside this tenant's scope, after answering) whether it was a
    cross-tenant attempt, to audit it in the operator's log (:mod:`musubi.tenancy.crossing`).
    """
    obj = await session.get(model, id_, with_for_update=lock or None, populate_existing=lock)
    if obj is None:
        raise NotFound(f"{what} {id_!r} not found", model=model, id=id_)
    return obj


async def flush_unique(session: AsyncSession, what: str, name: Any) -> None:
    """Flush, turning a unique-constraint clash into :class:`Conflict` naming the value."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a {what} named {name!r} already exists", field="name") from exc


async def newest_first(
    session: AsyncSession, query: Select[Any], model: type[T], after: str | None, limit: int
) -> tuple[list[T], bool]:
    """A page of ``query`` over ``model`` (a table with ``created_at`` and ``id``), newest
    first, after the row ``after`` (the last id of the previous page); and whether more
    rows follow. An ``after`` that names no row of this tenant is :class:`InvalidInput`."""
    m: Any = model
    query = query.order_by(m.created_at.desc(), m.id.desc())
    if after:
        anchor = await session.get(model, after)
        if anchor is None:
            raise InvalidInput(f"after: {after!r} is no id of this list", field="after")
        query = query.where(
            (m.created_at < anchor.created_at)  # type: ignore[attr-defined]
            | ((m.created_at == anchor.created_at) & (m.id < anchor.id))  # type: ignore[attr-defined]
        )
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit
