"""SSO refusals. Each carries a short machine ``reason`` for the audit log and a message
that tells the person (or the admin running a test login) what was wrong."""

from __future__ import annotations

from musubi.errors import InvalidInput, Unauthenticated
from musubi.extras import install_command

__all__ = ["LoginRejected", "MissingExtra", "UnsafeRedirect"]


class LoginRejected(Unauthenticated):
    """What the IdP sent (or the browser brought back) does not prove who this is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"SSO login rejected: {message}", reason=reason)
        self.reason = reason


class UnsafeRedirect(InvalidInput):
    """A return address that leaves this server (open-redirect attempt)."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(
            f"{field} must be a path on this server (like /dashboard), not {value[:200]!r}",
            field=field,
        )


class MissingExtra(RuntimeError):
    def __init__(self, package: str) -> None:
        super().__init__(f"SSO needs {package!r}; install it with: {install_command('sso')}")
