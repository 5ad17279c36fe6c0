"""MUSUBI's error hierarchy. The HTTP mapping lives in :mod:`musubi.api.errors`.

::

    MusubiError
    ├── NotFound               the object does not exist, or belongs to another tenant
    ├── Conflict               a unique name or state clash
    ├── InvalidInput           input that parsed but makes no sense (names the field)
    ├── PayloadTooLarge        a request body over the configured limit
    ├── Unauthenticated        no, unknown, wrong, expired or revoked credentials
    ├── PermissionDenied       authenticated, but the permission is missing
    ├── TenantScopeError       code ran a tenant-scoped query with no tenant bound (a bug)
    └── AuditIntegrityError    the audit chain does not verify
"""

from __future__ import annotations

__all__ = [
    "AuditIntegrityError",
    "Conflict",
    "InvalidInput",
    "MusubiError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "TenantScopeError",
    "Unauthenticated",
]


class MusubiError(Exception):
    """Base of every error MUSUBI raises on purpose."""

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(MusubiError):
    pass


class Conflict(MusubiError):
    pass


class InvalidInput(MusubiError):
    def __init__(self, message: str, field: str | None = None, **detail: object) -> None:
        super().__init__(message, **detail)
        self.field = field


class PayloadTooLarge(MusubiError):
    pass


class Unauthenticated(MusubiError):
    pass


class PermissionDenied(MusubiError):
    def __init__(self, permission: str, message: str | None = None) -> None:
        super().__init__(message or f"missing permission {permission!r}", permission=permission)
        self.permission = permission


class TenantScopeError(MusubiError):
    pass


class AuditIntegrityError(MusubiError):
    pass
