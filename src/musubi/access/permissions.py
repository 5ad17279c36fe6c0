"""Permission names and the built-in roles.

A permission is ``<area>:<verb>``. Routes declare the one they need and where it must be
held (:mod:`musubi.api.deps`); a principal without it there is refused (deny by default).
Custom roles are any subset of :data:`PERMISSIONS`.
"""

from __future__ import annotations

__all__ = ["BUILTIN_ROLES", "PERMISSIONS", "SCOPES", "expand"]

PERMISSIONS: dict[str, str] = {
    "tenant:read": "See the tenant's settings",
    "tenant:update": "Change the tenant's settings",
    "platform:tenants": "Create, list and delete tenants (root tenant only)",
    "teams:read": "List and see teams",
    "teams:write": "Create, change and delete teams",
    "projects:read": "List and see projects",
    "projects:write": "Create, change and delete projects",
    "users:read": "List and see users and service accounts",
    "users:write": "Create, change and delete users and service accounts",
    "keys:read": "List API keys (never their secrets)",
    "keys:write": "Create and revoke API keys",
    "roles:read": "List roles and role assignments",
    "roles:write": "Create custom roles and change role assignments",
    "audit:read": "Query and export the audit log",
    "audit:verify": "Verify the audit chain",
    "audit:purge": "Apply audit retention",
    "usage:read": "See usage and cost",
    "billing:read": "See billing and quotas",
    "quotas:write": "Set usage quotas of the tenant, its teams, projects and keys",
    "models:use": "Call models through the gateway",
    "sso:read": "See identity providers, the SSO policy and browser sessions",
    "sso:write": "Configure identity providers and the SSO policy; revoke sessions",
    "scim:provision": "Provision users and groups through SCIM (for an IdP's service account)",
    "providers:read": "See provider credentials (never their secrets) and routing",
    "providers:write": "Set and delete provider credentials and routing",
    "knowledge:read": "Search a project's code index and pack context from it",
    "knowledge:write": "Index (or re-index) a project's repository",
    "runs:read": "See a project's orchestrator runs, their events and cost estimates",
    "runs:write": "Start, approve and cancel orchestrator runs (calls models as the key)",
    "integrations:read": "See a project's trackers (never their secrets), outbox and conflicts",
    "integrations:write": "Configure a project's trackers, sync them and resolve conflicts",
}

_READ = {p for p in PERMISSIONS if p.endswith(":read")}
_ALL = set(PERMISSIONS)

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset(_ALL),
    "admin": frozenset(_ALL - {"platform:tenants", "audit:purge"}),  # holds quotas:write
    "maintainer": frozenset(
        _READ - {"audit:read"}
        | {"teams:write", "projects:write", "keys:write", "models:use", "knowledge:write"}
        | {"runs:write", "integrations:write"}
    ),
    "developer": frozenset(
        {
            "tenant:read",
            "teams:read",
            "projects:read",
            "users:read",
            "keys:read",
            "keys:write",
            "roles:read",
            "usage:read",
            "models:use",
            "knowledge:read",
            "knowledge:write",
            "runs:read",
            "runs:write",
        }
    ),
    "viewer": frozenset(_READ - {"audit:read", "billing:read"}),
    "auditor": frozenset(_READ | {"audit:verify"}),
    "billing": frozenset(
        {"tenant:read", "usage:read", "billing:read", "projects:read", "teams:read", "quotas:write"}
    ),
    "provisioner": frozenset({"scim:provision"}),  # the IdP's SCIM service account
}

SCOPES = ("tenant", "team", "project")


def expand(role: str, custom: dict[str, frozenset[str]]) -> frozenset[str]:
    """The permissions of a role name: built-in first, then the tenant's custom roles."""
    if role in BUILTIN_ROLES:
        return BUILTIN_ROLES[role]
    return custom.get(role, frozenset())
