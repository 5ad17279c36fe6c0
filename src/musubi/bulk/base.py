"""What every bulk kind is made of: the caller, the outcome of one item, the kind itself.

A :class:`Kind` names its item model (a pydantic model per row), how to apply one item
(create or update, through the area's service functions), and how to export the tenant's
objects as rows that the import accepts back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.errors import NotFound, PermissionDenied
from musubi.identity.models import User
from musubi.tenancy.models import Project, Team

__all__ = ["BlankIsNone", "Caller", "Kind", "Outcome", "Ref", "Status", "names", "resolve"]

Status = Literal["created", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class Caller:
    """Who runs the import or export, in the bound tenant.

    ``principal`` is the API caller, checked exactly as the single routes check it;
    ``None`` is the operator CLI, which (like its single commands) checks nothing.
    ``missing`` collects the (model, id, detail) of items whose id was not found, for the
    API to check after answering whether they were another tenant's
    (:mod:`musubi.tenancy.crossing`).
    """

    tenant_id: str
    repos_root: Path
    principal: Principal | None = None
    missing: list[tuple[type, str, dict[str, Any]]] = field(default_factory=list)

    def check(
        self, perm: str, *, team_id: str | None = None, project_id: str | None = None
    ) -> None:
        p = self.principal
        if p is not None and not p.can(perm, team_id=team_id, project_id=project_id):
            raise PermissionDenied(perm)


@dataclass(frozen=True)
class Outcome:
    status: Status
    id: str
    token: str | None = None  # a new key's secret: reported once, never stored


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


BlankIsNone = BeforeValidator(_blank_to_none)
"""For an optional field: an empty CSV cell means none."""

Ref = Annotated[str | None, BlankIsNone]
"""An optional reference by id or name."""

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Kind(Generic[M]):
    name: str
    read: str  # the permission to export
    write: str  # the permission to import
    item: type[M]
    columns: tuple[str, ...]  # export columns, in order; all accepted by the import
    apply: Callable[[AsyncSession, Caller, M], Awaitable[Outcome]]
    export: Callable[[AsyncSession, Caller], Awaitable[list[dict[str, Any]]]]
    read_only: tuple[str, ...] = field(default=())  # exported for reference, ignored on import
    tenant_wide_write: bool = False  # the single routes need ``write`` tenant-wide


async def resolve(session: AsyncSession, model: type[User | Team | Project], value: str) -> str:
    """The id of the bound tenant's user, team or project whose id or name is ``value``."""
    for column in (model.id, model.name):  # an id first, then a name
        found: str | None = await session.scalar(select(model.id).where(column == value))
        if found is not None:
            return found
    what = {User: "user", Team: "team", Project: "project"}[model]
    raise NotFound(f"{what} {value!r} not found", model=model, id=value)


async def names(session: AsyncSession, model: type[User | Team | Project]) -> dict[str, str]:
    """Id -> name of the bound tenant's users, teams or projects (for exports)."""
    return {id_: name for id_, name in await session.execute(select(model.id, model.name))}
