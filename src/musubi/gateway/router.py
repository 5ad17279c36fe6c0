"""Which deployments serve a requested model: aliases, tasks, fallbacks, weights.

A :class:`RoutingTable` is built per tenant from its credentials, its configuration and
the catalogue; :meth:`RoutingTable.plan` turns a requested name into an ordered list of
(model, deployments) groups, the first being the primary and the rest fallbacks.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field

from musubi.egress import EgressPolicy
from musubi.errors import NotFound
from musubi.gateway.catalogue import Catalogue, ModelInfo
from musubi.gateway.config import TASKS, RouterConfig
from musubi.gateway.providers.base import ClientPool, Credential, Provider
from musubi.gateway.providers.registry import ProviderRegistry

__all__ = ["Deployment", "Plan", "RoutingTable", "pick_weighted"]


@dataclass(frozen=True)
class Deployment:
    id: str  # "<tenant>/<credential>/<upstream model>": the circuit breaker's key
    model: ModelInfo
    provider: Provider
    weight: float

    @property
    def credential(self) -> str:
        return self.provider.credential.name


@dataclass
class Plan:
    requested: str
    groups: list[tuple[ModelInfo, list[Deployment]]]
    how: list[str] = field(default_factory=list)  # e.g. ["alias fast->gpt-4o-mini"]


def pick_weighted(deployments: list[Deployment], rng: random.Random) -> list[Deployment]:
    """The deployments in a weighted random order (each draw without replacement)."""
    left = list(deployments)
    out: list[Deployment] = []
    while left:
        total = sum(max(d.weight, 0.0) for d in left)
        if total <= 0:
            out.extend(left)
            break
        x = rng.uniform(0, total)
        for i, d in enumerate(left):
            x -= max(d.weight, 0.0)
            if x <= 0 or i == len(left) - 1:
                out.append(left.pop(i))
                break
    return out


class RoutingTable:
    def __init__(
        self,
        tenant_id: str,
        config: RouterConfig,
        credentials: list[Credential],
        catalogue: Catalogue,
        registry: ProviderRegistry,
        pool: ClientPool,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.config = config
        self.catalogue = catalogue
        self.by_model: dict[str, list[Deployment]] = {}
        self.by_credential: dict[str, Provider] = {}
        for cred in credentials:
            if cred.provider not in registry.kinds:
                continue
            provider = registry.build(cred, pool, egress)
            self.by_credential[cred.name] = provider
            infos = [m for m in catalogue.for_provider(cred.provider) if m.name in cred.models]
            if not cred.models:
                infos = catalogue.for_provider(cred.provider)
            known = {m.name for m in infos}
            for name in cred.models:  # models the catalogue does not know (vLLM…)
                if name not in known and catalogue.get(name) is None:
                    infos.append(ModelInfo(name=name, provider=cred.provider, upstream=name))
            for info in infos:
                dep = Deployment(
                    f"{tenant_id}/{cred.name}/{info.upstream}", info, provider, cred.weight
                )
                self.by_model.setdefault(info.name, []).append(dep)

    def allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.config.allow)

    def usable_models(self) -> list[str]:
        names = [n for n in self.by_model if self.allowed(n)]
        names += [a for a, target in self.config.aliases.items() if target in self.by_model]
        names += [f"musubi/{t}" for t in TASKS if self._first_usable(self.config.task_models(t))]
        return sorted(set(names))

    def _first_usable(self, models: list[str]) -> list[str]:
        return [m for m in models if m in self.by_model and self.allowed(m)]

    def _explicit(self, name: str) -> list[Deployment] | None:
        """``<credential or provider>/<upstream model>``: straight to that endpoint."""
        prefix, _, upstream = name.partition("/")
        if not upstream:
            return None
        providers = [p for n, p in self.by_credential.items() if prefix in (n, p.name)]
        return [
            Deployment(
                f"{self.tenant_id}/{p.credential.name}/{upstream}",
                ModelInfo(name=name, provider=p.name, upstream=upstream),
                p,
                p.credential.weight,
            )
            for p in providers
        ] or None

    def plan(self, requested: str, task: str | None = None) -> Plan:
        plan = Plan(requested, [])
        names: list[str]
        if requested.startswith("musubi/") or (task and requested in ("", "auto")):
            task = requested.removeprefix("musubi/") if requested.startswith("musubi/") else task
            assert task is not None
            if task not in TASKS and task not in self.config.tasks:
                raise NotFound(f"unknown task {task!r}", available=self.usable_models())
            names = self._first_usable(self.config.task_models(task))
            plan.how.append(f"task={task}")
        else:
            target = self.config.aliases.get(requested, requested)
            if target != requested:
                plan.how.append(f"alias={requested}->{target}")
            names = [target]
        if len(names) == 1 and names[0] not in self.by_model:
            explicit = self._explicit(names[0]) if self.allowed(names[0]) else None
            if explicit:
                plan.groups.append((explicit[0].model, explicit))
                return plan
        seen: set[str] = set()
        queue = list(names)
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            deps = self.by_model.get(name) if self.allowed(name) else None
            if deps:
                plan.groups.append((deps[0].model, deps))
            queue.extend(self.config.fallbacks.get(name, []))
        if not plan.groups:
            raise NotFound(
                f"model {requested!r} not found or not usable with this key; "
                f"available: {', '.join(self.usable_models()) or '(none: configure a provider)'}",
                available=self.usable_models(),
            )
        return plan
