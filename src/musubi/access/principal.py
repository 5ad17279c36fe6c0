"""Who is calling, and what they may do where. Built once per key and cached."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Principal"]


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    user_id: str
    actor: str  # the name the audit log records, e.g. "key:msk_1a2b3c4d"
    key_id: str | None = None
    is_root_tenant: bool = False
    project_id: str | None = None  # set when the key is restricted to one project
    project_team_id: str | None = None  # that project's team
    tenant_perms: frozenset[str] = frozenset()
    team_perms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    project_perms: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def can(self, perm: str, *, team_id: str | None = None, project_id: str | None = None) -> bool:
        """Whether ``perm`` is held for the tenant, or for the given team or project."""
        if perm == "platform:tenants" and not self.is_root_tenant:
            return False
        if self.project_id is not None and project_id != self.project_id:
            return False  # a project key acts only inside its project
        if perm in self.tenant_perms:
            return True
        if team_id is not None and perm in self.team_perms.get(team_id, ()):
            return True
        return project_id is not None and perm in self.project_perms.get(project_id, ())

    def holds_anywhere(self, perm: str) -> bool:
        """Whether ``perm`` is held at some scope: enough to enter a route that filters."""
        if self.project_id is not None:
            return self.can(perm, team_id=self.project_team_id, project_id=self.project_id)
        if perm == "platform:tenants" and not self.is_root_tenant:
            return False
        return (
            perm in self.tenant_perms
            or any(perm in p for p in self.team_perms.values())
            or any(perm in p for p in self.project_perms.values())
        )

    def perms_at(
        self, *, team_id: str | None = None, project_id: str | None = None
    ) -> frozenset[str]:
        """Every permission held for the tenant, or the given team or project: the ceiling
        of what this caller may grant or hand on *at that scope* (never the union of all
        scopes, which would let a project admin grant tenant-wide what it holds only there).
        """
        if self.project_id is not None and project_id != self.project_id:
            return frozenset()  # a project key holds nothing outside its project
        perms = set(self.tenant_perms)
        if team_id is not None:
            perms |= self.team_perms.get(team_id, frozenset())
        if project_id is not None:
            perms |= self.project_perms.get(project_id, frozenset())
        if not self.is_root_tenant:
            perms.discard("platform:tenants")
        return frozenset(perms)

    def scoped_ids(self, perm: str) -> tuple[set[str], set[str]]:
        """Teams and projects where ``perm`` is held below tenant level."""
        teams = {t for t, p in self.team_perms.items() if perm in p}
        projects = {pid for pid, p in self.project_perms.items() if perm in p}
        return teams, projects
