"""The model catalogue: name, provider, context window, prices and capabilities.

Built-in models come from ``catalogue.toml`` (package data; TOML, read by the standard
library, so a server does not import a YAML parser for 20 lines). A credential may add models
of its own (for example what a vLLM server hosts); those cost nothing unless priced.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["Catalogue", "ModelInfo"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str
    upstream: str
    context: int = 0
    input_price: float = 0.0  # USD per 1M tokens
    output_price: float = 0.0
    mode: str = "chat"  # chat | embedding
    capabilities: tuple[str, ...] = field(default_factory=tuple)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "context_window": self.context,
            "input_price_per_1m": self.input_price,
            "output_price_per_1m": self.output_price,
            "mode": self.mode,
            "capabilities": list(self.capabilities),
        }


class Catalogue:
    def __init__(self, models: dict[str, ModelInfo]) -> None:
        self.models = models

    @classmethod
    def builtin(cls) -> Catalogue:
        text = resources.files("musubi.gateway").joinpath("catalogue.toml").read_text("utf-8")
        raw: dict[str, dict[str, Any]] = tomllib.loads(text)["models"]
        models = {
            name: ModelInfo(
                name=name,
                provider=spec["provider"],
                upstream=spec.get("upstream", name),
                context=int(spec.get("context", 0)),
                input_price=float(spec.get("input", 0)),
                output_price=float(spec.get("output", 0)),
                mode=spec.get("mode", "chat"),
                capabilities=tuple(spec.get("capabilities", ())),
            )
            for name, spec in raw.items()
        }
        return cls(models)

    def get(self, name: str) -> ModelInfo | None:
        return self.models.get(name)

    def for_provider(self, provider: str) -> list[ModelInfo]:
        return [m for m in self.models.values() if m.provider == provider]
