"""The provider kinds the gateway can build, found through the ``musubi.providers`` entry
points (:mod:`musubi.kinds`): the built-ins are declared in this package's pyproject.toml,
a plugin's in its own. One registry object per gateway, not a module global."""

from __future__ import annotations

from musubi.egress import UNRESTRICTED, EgressPolicy
from musubi.errors import PluginError
from musubi.gateway.providers.base import PROVIDERS, ClientPool, Credential, Provider

__all__ = ["ProviderRegistry", "installed_providers"]


def installed_providers() -> tuple[type[Provider], ...]:
    """Every provider class installed (built-in or from a plugin) whose extra is present."""
    kinds = []
    for name, factory in PROVIDERS.load_all().items():
        if not (isinstance(factory, type) and issubclass(factory, Provider)):
            raise PluginError(f"musubi.providers entry point {name!r} is not a Provider class")
        if factory.name != name:
            raise PluginError(
                f"musubi.providers entry point {name!r} names a provider called {factory.name!r}"
            )
        kinds.append(factory)
    return tuple(kinds)


class ProviderRegistry:
    """Provider kinds by name (owned by the gateway); by default every installed one."""

    def __init__(self, kinds: tuple[type[Provider], ...] | None = None) -> None:
        kinds = installed_providers() if kinds is None else kinds
        self.kinds: dict[str, type[Provider]] = {k.name: k for k in kinds}

    def register(self, kind: type[Provider]) -> None:
        self.kinds[kind.name] = kind

    def build(
        self, credential: Credential, pool: ClientPool, egress: EgressPolicy | None = None
    ) -> Provider:
        """The provider of ``credential``, connecting where ``egress`` allows (a trusted
        credential, set up by the server itself, anywhere)."""
        policy = UNRESTRICTED if credential.trusted else egress
        return self.kinds[credential.provider](credential, pool, policy)
