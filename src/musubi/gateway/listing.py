"""The models a tenant can call: one listing for ``GET /v1/models`` and ``musubi models list``.

Both read the tenant's routing table as the gateway builds it (stored credentials plus the
implicit ones: a detected Ollama, the installed offline model), so a model that answers
calls is listed by both, and a model listed by both answers calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.router import RoutingTable

__all__ = ["ListedModel", "list_models"]


@dataclass(frozen=True)
class ListedModel:
    name: str
    owned_by: str  # the provider serving it; "musubi" for aliases and musubi/<task> names
    usable: bool
    info: ModelInfo | None  # catalogue facts; None for aliases and task names

    def row(self) -> dict[str, Any]:
        """The CLI's row: the catalogue columns (empty where unknown) and ``usable``."""
        public = self.info.public() if self.info else {"name": self.name}
        return {
            **{k: "" for k in ("provider", "context_window", "mode", "capabilities")},
            **public,
            "name": self.name,
            "provider": self.owned_by,
            "usable": self.usable,
        }


def list_models(table: RoutingTable, *, include_unusable: bool = False) -> list[ListedModel]:
    """What ``table`` serves, sorted by name; with ``include_unusable``, then the rest of the
    catalogue (no credential serves them) marked unusable."""
    usable = table.usable_models()
    out = []
    for name in usable:
        deps = table.by_model.get(name)
        info = deps[0].model if deps else None
        out.append(ListedModel(name, info.provider if info else "musubi", True, info))
    if include_unusable:
        served = set(usable)
        out += [
            ListedModel(info.name, info.provider, False, info)
            for name, info in sorted(table.catalogue.models.items())
            if name not in served
        ]
    return out
