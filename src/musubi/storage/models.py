"""Imports every table so that ``metadata`` is complete (for migrations and tests)."""

from __future__ import annotations

from musubi.access.models import Role, RoleAssignment
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.identity.models import ApiKey, User
from musubi.storage.base import Base
from musubi.tenancy.models import Project, Team, Tenant

__all__ = [
    "ApiKey",
    "AuditAnchor",
    "AuditEvent",
    "AuditHead",
    "Project",
    "Role",
    "RoleAssignment",
    "Team",
    "Tenant",
    "User",
    "metadata",
]

metadata = Base.metadata
