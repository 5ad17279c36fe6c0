"""Declarative base, id generation, and the :class:`TenantScoped` mixin."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "TenantScoped",
    "Timestamps",
    "UTCDateTime",
    "new_id",
    "tenant_column",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """An unguessable id with a readable type prefix, e.g. ``prj_3f9a1c0b7d2e4a61``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def tenant_column(*, primary_key: bool = False) -> Mapped[str]:
    """The ``tenant_id`` column of a row owned by a tenant: deleted with its tenant, indexed
    (or part of the primary key)."""
    fk = ForeignKey("tenants.id", ondelete="CASCADE")
    if primary_key:
        return mapped_column(String(40), fk, primary_key=True)
    return mapped_column(String(40), fk, index=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TenantScoped:
    """Rows that belong to one tenant.

    The data layer (:mod:`musubi.storage.scoping`) adds ``tenant_id = <bound tenant>`` to
    every ORM select, update and delete of these classes, fills ``tenant_id`` on insert,
    and refuses to run with no tenant bound. On PostgreSQL, row-level security policies
    enforce the same rule inside the database.
    """

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
