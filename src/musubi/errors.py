"""MUSUBI's error hierarchy. The HTTP mapping lives in :mod:`musubi.api.errors`.

::

    MusubiError
    ├── NotFound               the object does not exist, or belongs to another tenant
    ├── Conflict               a unique name or state clash
    ├── InvalidInput           input that parsed but makes no sense (names the field)
    ├── PayloadTooLarge        a request body over the configured limit
    ├── Unauthenticated        no, unknown, wrong, expired or revoked credentials
    ├── PermissionDenied       authenticated, but the permission is missing
    ├── QuotaExceeded          a usage quota (requests, tokens, cost) is spent for now
    ├── UpstreamError          a model provider failed or answered an error (502)
    │   └── UpstreamTimeout    a model provider did not answer in time (504)
    ├── MissingExtra           an optional dependency is not installed (names the extra)
    ├── PluginError            an entry point names no usable implementation of its kind
    ├── TenantScopeError       code ran a tenant-scoped query with no tenant bound (a bug)
    └── AuditIntegrityError    the audit chain does not verify
"""

from __future__ import annotations

from musubi.extras import install_command

__all__ = [
    "AuditIntegrityError",
    "Conflict",
    "InvalidInput",
    "MissingExtra",
    "MusubiError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PluginError",
    "QuotaExceeded",
    "TenantScopeError",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamTimeout",
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


class QuotaExceeded(MusubiError):
    """``retry_after`` seconds until the window resets; ``headers`` are x-ratelimit-*."""

    def __init__(self, message: str, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
        self.headers = headers


class UpstreamError(MusubiError):
    """A model provider failed; ``provider`` names it, ``status`` is its HTTP status."""

    def __init__(self, provider: str, message: str, status: int | None = None) -> None:
        super().__init__(f"provider {provider!r}: {message}", provider=provider, status=status)
        self.provider = provider
        self.status = status


class UpstreamTimeout(UpstreamError):
    pass


class MissingExtra(MusubiError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, extra: str, package: str, install: str | None = None) -> None:
        """``install``: the command, when the package is not part of the extra itself."""
        how = f"install it: {install}" if install else ""
        how = how or f"install the extra: {install_command(extra)}"
        super().__init__(f"{package} is not installed; {how}", extra=extra, package=package)


class PluginError(MusubiError):
    """An entry point of a ``musubi.*`` group is broken: it does not load, or it gives an
    object that is not of its kind (a bug of the package that declares it)."""


class TenantScopeError(MusubiError):
    pass


class AuditIntegrityError(MusubiError):
    pass
