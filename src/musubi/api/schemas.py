"""Response models shared by the routers (request models live beside their routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = [
    "AssignmentOut",
    "Created",
    "KeyOut",
    "Page",
    "Patch",
    "ProjectOut",
    "RoleOut",
    "TeamOut",
    "TenantOut",
    "UserOut",
]

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _no_null_in_schema(schema: dict[str, Any], cls: type) -> None:
    """The JSON schema of a :class:`Patch`: ``null`` only for the fields that take it."""
    nullable: frozenset[str] = getattr(cls, "nullable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not isinstance(options, list):
            continue
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", 0) is None:
            del prop["default"]


class Patch(BaseModel):
    """A PATCH body: a field left out stays as it is; ``null`` is refused (422 naming the
    field) unless the field is listed in ``nullable``, where it clears the value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_in_schema)
    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_it_clears(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("leave the field out to keep it; it cannot be null")
        return value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class Created(BaseModel):
    pass


class TenantOut(Out):
    id: str
    name: str
    is_root: bool
    audit_retention_days: int
    created_at: datetime
    updated_at: datetime


class TeamOut(Out):
    id: str
    tenant_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class ProjectOut(Out):
    id: str
    tenant_id: str
    team_id: str | None
    name: str
    description: str
    repo_path: str | None
    created_at: datetime
    updated_at: datetime


class UserOut(Out):
    id: str
    tenant_id: str
    name: str
    display_name: str
    kind: str
    disabled: bool
    created_at: datetime


class KeyOut(Out):
    id: str
    tenant_id: str
    user_id: str
    project_id: str | None
    name: str
    prefix: str
    state: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class RoleOut(Out):
    id: str | None
    name: str
    description: str
    permissions: list[str]
    builtin: bool


class AssignmentOut(Out):
    id: str
    user_id: str
    role: str
    scope: str
    scope_id: str
    created_at: datetime


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
