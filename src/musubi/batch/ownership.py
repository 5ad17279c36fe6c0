"""Who may see and change a file or a batch inside its tenant.

Each file and batch belongs to a project (``project_id``; ``None``: the tenant itself) and to
the user who created it (``user_id``): the project and user of the key that uploaded the
file or created the batch. A batch's output and error files belong to the batch's project
and creator. The rules, as in OpenAI's Files and Batch APIs inside an organisation, where
files are a project's, shared by its members:

* A key restricted to a project sees only that project's files and batches; any other id
  answers 404, exactly like an id that does not exist.
* A key that is not restricted sees its own user's objects, and those of every project
  where that user holds ``models:use`` (through a tenant, team or project role). A user
  with ``models:use`` for the whole tenant sees every file and batch of the tenant,
  tenant-level ones included.
* Seeing an object is enough to read it: describe it, download its content, use it as a
  batch's input, follow a batch.
* Deleting a file or cancelling a batch someone else created needs more:
  ``projects:write`` at the object's project (its maintainers and admins), or for the
  tenant, for tenant-level objects. Your own objects you may always delete or cancel.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.errors import InvalidInput, NotFound, PermissionDenied
from musubi.tenancy.models import Project

__all__ = [
    "MANAGE",
    "READ",
    "Owned",
    "check_after",
    "check_manage",
    "check_visible",
    "visible_where",
]

READ = "models:use"
MANAGE = "projects:write"


class Owned(Protocol):
    """A file or a batch (read-only: a batch's ``user_id`` is never None)."""

    @property
    def id(self) -> str: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...


async def _team_of(session: AsyncSession, project_id: str | None) -> str | None:
    if project_id is None:
        return None
    project = await session.get(Project, project_id)
    return project.team_id if project is not None else None


def _sees(principal: Principal, obj: Owned, team_id: str | None) -> bool:
    if principal.project_id is not None:
        return obj.project_id == principal.project_id
    if obj.user_id is not None and obj.user_id == principal.user_id:
        return True
    return principal.can(READ, team_id=team_id, project_id=obj.project_id)


async def check_visible(session: AsyncSession, principal: Principal, obj: Owned, what: str) -> None:
    """:class:`NotFound` unless ``principal`` may see ``obj`` (the same answer as a missing
    id, so another project's ids cannot be told from ids that do not exist)."""
    if not _sees(principal, obj, await _team_of(session, obj.project_id)):
        raise NotFound(f"{what} {obj.id!r} not found")


async def check_manage(
    session: AsyncSession, principal: Principal, obj: Owned, what: str, verb: str
) -> None:
    """Whether ``principal`` may delete or cancel ``obj``: it must see it (else 404), and
    be its creator or hold :data:`MANAGE` at its project (else 403)."""
    team_id = await _team_of(session, obj.project_id)
    if not _sees(principal, obj, team_id):
        raise NotFound(f"{what} {obj.id!r} not found")
    if obj.user_id is not None and obj.user_id == principal.user_id:
        return
    if not principal.can(MANAGE, team_id=team_id, project_id=obj.project_id):
        raise PermissionDenied(
            MANAGE,
            f"only its creator, or a holder of {MANAGE!r} for its "
            f"{'project' if obj.project_id else 'tenant'}, may {verb} {what} {obj.id!r}",
        )


def visible_where(principal: Principal, model: Any) -> ColumnElement[bool] | None:
    """The condition that selects the rows of ``model`` that ``principal`` sees (``None``:
    every row of the tenant)."""
    if principal.project_id is not None:
        return model.project_id == principal.project_id  # type: ignore[no-any-return]
    if principal.can(READ):
        return None
    condition: ColumnElement[bool] = model.user_id == principal.user_id
    teams, projects = principal.scoped_ids(READ)
    if projects:
        condition = condition | model.project_id.in_(projects)
    if teams:
        in_teams = select(Project.id).where(Project.team_id.in_(teams))
        condition = condition | model.project_id.in_(in_teams)
    return condition


async def check_after(
    session: AsyncSession, visible: Select[Any], model: Any, after: str | None
) -> None:
    """A page's ``after`` must name a row of ``visible``: another project's id is no
    anchor (where it sorts would tell when that object was made)."""
    if after and await session.scalar(visible.where(model.id == after)) is None:
        raise InvalidInput(f"after: {after!r} is no id of this list", field="after")
