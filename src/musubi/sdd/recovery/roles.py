"""Class roles: which code files describe no feature of their own.

A requirement is implemented by the classes that do its work; an exception type or an enum
of constants is *used* by that work in every feature alike. When such a class is also a hub
(many files of the project mention it), its words ("connection", "entity", "type") match
many requirements a little and the structural propagation lifts it further, so it crowds the
head of every ranking. :func:`roles` finds these classes with plain regexes (any C-like
language), and :func:`role_weights` gives each file the factor its similarity is multiplied
by: ``1.0`` unless the file has a down-weighted role *and* is generic (mentioned by at least
``generic_share`` of the files). Data holders (beans) are recognised too but kept at 1.0 by
default: on both public gold sets they carry many true links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["ROLES", "class_role", "role_weights"]

ROLES = ("exception", "enum", "data")

_ENUM = re.compile(r"\benum\s+[A-Za-z_]\w*")
_EXCEPTION = re.compile(
    r"\bclass\s+\w+(?:\s*<[^>]*>)?\s*(?:extends\s+|\(\s*)[\w.]*(?:Exception|Error)\b"
)
_METHOD = re.compile(r"\b(?:public|private|protected|def)\b[^;{}()=\n]*?([A-Za-z_]\w*)\s*\(")
_ACCESSOR = re.compile(r"(?:get|set|is)(?:[A-Z_]|$)")
_DATA_SHARE = 0.6


def class_role(text: str) -> str | None:
    """``"exception"``, ``"enum"``, ``"data"`` (most methods are getters/setters) or None."""
    if _EXCEPTION.search(text):
        return "exception"
    if _ENUM.search(text):
        return "enum"
    methods = [m for m in _METHOD.findall(text) if m not in {"if", "for", "while", "switch"}]
    if methods and sum(bool(_ACCESSOR.match(m)) for m in methods) / len(methods) >= _DATA_SHARE:
        return "data"
    return None


def role_weights(
    texts: Mapping[str, str],
    neighbours: Mapping[str, set[str]],
    weights: Mapping[str, float],
    generic_share: float,
) -> dict[str, float]:
    """Similarity factor per file: ``weights[role]`` for generic files of a weighted role."""
    floor = max(2.0, generic_share * len(texts))
    out: dict[str, float] = {}
    for path, text in texts.items():
        role = class_role(text)
        generic = len(neighbours.get(path, ())) >= floor
        out[path] = weights.get(role, 1.0) if role is not None and generic else 1.0
    return out
