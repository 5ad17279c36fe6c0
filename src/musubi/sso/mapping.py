"""From what an IdP sent (OIDC claims or SAML attributes) to a MUSUBI identity and roles.

Pure functions on dicts, so every IdP's quirks are unit-tested without a network:

* a claim is found by dot path (``realm_access.roles`` in Keycloak), or by its whole
  name first (``https://example.com/claims/groups`` has dots of its own); a value may be
  a string or a list;
* Microsoft Entra ID: app roles in ``roles``, the stable identity is ``tid`` + ``oid``
  (``sub`` is pairwise per application), and a user in too many groups gets no
  ``groups`` but a ``_claim_names.groups`` overage marker, reported as a warning;
* rules map a group/role value to a MUSUBI role at tenant, team or project scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Grant",
    "MappedIdentity",
    "MappingConfig",
    "Rule",
    "claim_values",
    "managed_grants",
    "map_claims",
]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, description="A group or role value the IdP sends")
    role: str = Field(min_length=1, description="The MUSUBI role it grants")
    scope: Literal["tenant", "team", "project"] = "tenant"
    scope_id: str = ""


class MappingConfig(BaseModel):
    """How one IdP's claims map to users and roles (stored with the IdP)."""

    model_config = ConfigDict(extra="forbid")
    groups_claim: str = Field(default="groups", description="Dot path of the groups claim")
    roles_claim: str = Field(default="roles", description="Dot path of the roles claim")
    username_claim: str = "preferred_username"
    entra: bool = Field(default=False, description="Microsoft Entra ID: key users on tid+oid")
    jit: bool = Field(default=True, description="Create unknown users on first login")
    link_existing: bool = Field(
        default=False,
        description="Link a first login to an existing, unlinked human user of the same name "
        "(e.g. provisioned by SCIM). Only for an IdP trusted to assert user names.",
    )
    default_role: str | None = Field(default=None, description="Given to every SSO user")
    rules: list[Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class Grant:
    role: str
    scope: str = "tenant"
    scope_id: str = ""


@dataclass
class MappedIdentity:
    subject: str
    username: str
    email: str
    display_name: str
    values: list[str]  # groups and roles found, in order
    grants: list[Grant]
    warnings: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "username": self.username,
            "email": self.email,
            "display_name": self.display_name,
            "groups_and_roles": self.values,
            "grants": [g.__dict__ for g in self.grants],
            "warnings": self.warnings,
        }


def _grant(rule: Rule) -> Grant:
    return Grant(rule.role, rule.scope, rule.scope_id if rule.scope != "tenant" else "")


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """The string values at ``path``: the whole name first, then segment by segment."""
    if not path:
        return []
    if path in claims:
        return _as_strings(claims[path])
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    return _as_strings(node)


def _first(claims: Mapping[str, Any], *names: str) -> str:
    for name in names:
        values = claim_values(claims, name)
        if values and values[0]:
            return values[0]
    return ""


def map_claims(claims: Mapping[str, Any], config: MappingConfig) -> MappedIdentity:
    """Who this is and which roles the claims grant (no database involved)."""
    warnings: list[str] = []
    subject = str(claims.get("sub", ""))
    if config.entra:
        oid, tid = claims.get("oid"), claims.get("tid")
        if isinstance(oid, str) and isinstance(tid, str) and oid and tid:
            subject = f"{tid}/{oid}"
        else:
            warnings.append("entra: no oid/tid claims; keyed on sub, which is per application")
    names = claims.get("_claim_names")
    if isinstance(names, Mapping) and "groups" in names:
        warnings.append(
            "group overage: the IdP sent no groups list (too many groups); only app roles "
            "were mapped. Assign app roles, or limit the groups sent to this application."
        )
    values: list[str] = []
    for path in dict.fromkeys((config.groups_claim, config.roles_claim)):
        for v in claim_values(claims, path):
            if v not in values:
                values.append(v)
    grants: list[Grant] = []
    if config.default_role:
        grants.append(Grant(config.default_role))
    for rule in config.rules:
        grant = _grant(rule)
        if rule.value in values and grant not in grants:
            grants.append(grant)
    email = _first(claims, "email", "upn")
    username = _first(claims, config.username_claim, "email", "upn") or subject
    display = _first(claims, "name") or username
    return MappedIdentity(subject, username, email, display, values, grants, warnings)


def managed_grants(config: MappingConfig) -> set[Grant]:
    """The role assignments SSO owns: it adds and removes these, and leaves others alone."""
    owned = {_grant(r) for r in config.rules}
    if config.default_role:
        owned.add(Grant(config.default_role))
    return owned
