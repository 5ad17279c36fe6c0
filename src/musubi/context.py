"""The tenant and actor of the work in progress, bound once per request or CLI call.

Everything below the API reads the tenant from here: the data layer filters every
tenant-scoped query by :func:`current_tenant_id`, and the audit log takes the actor,
request id and client address from :func:`current_actor`. Nothing is passed around by hand.
It sits in the base layer (standard library only), under storage, because storage itself
reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "SYSTEM_TENANT",
    "Actor",
    "bind_actor",
    "bind_request",
    "bind_tenant",
    "current_actor",
    "current_tenant_id",
    "in_system_scope",
    "request_scope",
    "system_scope",
]

SYSTEM_TENANT = "_system"
"""Pseudo-tenant for security events that cannot be tied to a tenant (an unknown key)."""


@dataclass(frozen=True)
class Actor:
    """Who is acting, for the audit log."""

    name: str  # "user:<id>", "key:<prefix>", "cli:<os user>", "system"
    request_id: str | None = None
    client_ip: str | None = None


_tenant: ContextVar[str | None] = ContextVar("musubi_tenant", default=None)
_system: ContextVar[bool] = ContextVar("musubi_system_scope", default=False)
_actor: ContextVar[Actor | None] = ContextVar("musubi_actor", default=None)
_NOBODY = Actor("system")


def current_tenant_id() -> str | None:
    return _tenant.get()


def in_system_scope() -> bool:
    return _system.get()


def current_actor() -> Actor:
    return _actor.get() or _NOBODY


@contextmanager
def bind_tenant(tenant_id: str) -> Iterator[None]:
    """Run the block as ``tenant_id``: every tenant-scoped query is filtered to it."""
    token = _tenant.set(tenant_id)
    system = _system.set(False)
    try:
        yield
    finally:
        _system.reset(system)
        _tenant.reset(token)


@contextmanager
def system_scope() -> Iterator[None]:
    """Run the block across tenants (key lookup, bootstrap, platform administration).

    Use it only where reading across tenants is the point; the data layer refuses a
    tenant-scoped query with neither a tenant nor this scope bound.
    """
    token = _system.set(True)
    tenant = _tenant.set(None)
    try:
        yield
    finally:
        _tenant.reset(tenant)
        _system.reset(token)


@contextmanager
def bind_actor(actor: Actor) -> Iterator[None]:
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


_request_open: ContextVar[bool] = ContextVar("musubi_request_scope", default=False)


@contextmanager
def request_scope() -> Iterator[None]:
    """One HTTP request's span (entered by the ASGI middleware): whatever
    :func:`bind_request` binds inside is unbound when it ends, response body included."""
    opened, tenant = _request_open.set(True), _tenant.set(None)
    system, actor = _system.set(False), _actor.set(None)
    try:
        yield
    finally:
        _actor.reset(actor)
        _system.reset(system)
        _tenant.reset(tenant)
        _request_open.reset(opened)


def bind_request(tenant_id: str, actor: Actor) -> None:
    """Bind the authenticated caller for the rest of the request (no block to wrap: the
    route's dependency runs before the handler, in the same task)."""
    if not _request_open.get():
        raise RuntimeError("bind_request outside request_scope()")
    _tenant.set(tenant_id)
    _system.set(False)
    _actor.set(actor)
