"""Automatic tenant filtering in the ORM, so no call site has to remember it.

* Every ORM ``select``/``update``/``delete`` touching a :class:`TenantScoped` class (or
  :class:`~musubi.storage.tenants.Tenant` itself) gets ``tenant_id = <bound tenant>`` added
  through ``with_loader_criteria``, including joins and relationship loads.
* A new row gets the bound tenant; a row carrying another tenant's id is refused, and so
  is moving a row to another tenant.
* With neither a tenant nor :func:`~musubi.context.system_scope` bound, the query
  is refused (:class:`~musubi.errors.TenantScopeError`): fail closed.
* On PostgreSQL each transaction sets ``musubi.tenant_id`` / ``musubi.system``, which the
  row-level security policies of the migrations check.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from musubi.context import current_tenant_id, in_system_scope
from musubi.errors import TenantScopeError
from musubi.storage.base import TenantScoped
from musubi.storage.tenants import Tenant

__all__ = ["TenantSession"]


class TenantSession(Session):
    """The ORM session class MUSUBI uses; the listeners below are bound to it."""


def _is_scoped(cls: type) -> bool:
    return issubclass(cls, TenantScoped | Tenant)


def _add_tenant_criteria(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if in_system_scope():
        return
    mappers = state.all_mappers
    if not any(_is_scoped(m.class_) for m in mappers):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        names = ", ".join(sorted(m.class_.__name__ for m in mappers))
        raise TenantScopeError(f"tenant-scoped query ({names}) with no tenant bound")

    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        ),
        with_loader_criteria(Tenant, lambda cls: cls.id == tenant_id, include_aliases=True),
    )


def _stamp_new_rows(session: Session, flush_context: Any, instances: Any) -> None:
    system = in_system_scope()
    tenant_id = current_tenant_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if system:
            if not obj.tenant_id:
                raise TenantScopeError(
                    f"{type(obj).__name__} created in system scope without tenant"
                )
            continue
        if tenant_id is None:
            raise TenantScopeError(f"{type(obj).__name__} created with no tenant bound")
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise TenantScopeError(f"{type(obj).__name__} created for another tenant")
    for obj in session.dirty:
        if isinstance(obj, TenantScoped) and not system:
            history = session.is_modified(obj) and _tenant_changed(obj)
            if history:
                raise TenantScopeError(f"{type(obj).__name__} moved to another tenant")


def _tenant_changed(obj: TenantScoped) -> bool:
    hist = inspect(obj).attrs.tenant_id.history
    return bool(hist.deleted) and bool(hist.added)


def _set_rls_settings(session: Session, transaction: Any, connection: Any) -> None:
    if connection.dialect.name != "postgresql":
        return
    connection.execute(
        text(
            "SELECT set_config('musubi.tenant_id', :t, true), set_config('musubi.system', :s, true)"
        ),
        {"t": current_tenant_id() or "", "s": "on" if in_system_scope() else "off"},
    )


event.listen(TenantSession, "do_orm_execute", _add_tenant_criteria)
event.listen(TenantSession, "before_flush", _stamp_new_rows)
event.listen(TenantSession, "after_begin", _set_rls_settings)
