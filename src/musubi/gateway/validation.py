"""Checks of a gateway request body that every way in shares (the HTTP routes, the fast
path and batch lines): a malformed request is refused naming the field."""

from __future__ import annotations

from typing import Any

from musubi.errors import InvalidInput

__all__ = ["validate_chat", "validate_counts"]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_COUNTS = ("max_tokens", "max_completion_tokens", "n")
"""Parameters the gateway itself reads as counts (the quota reserves max_tokens)."""


def validate_chat(body: dict[str, Any]) -> None:
    """Refuse a malformed chat request, naming the field (answered as 400)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidInput("model: a model name is required", field="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages: a non-empty list of messages is required", field="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise InvalidInput(f"messages.{i}: must be an object", field=f"messages.{i}")
        if m.get("role") not in _ROLES:
            raise InvalidInput(
                f"messages.{i}.role: must be one of {', '.join(_ROLES)}", field=f"messages.{i}.role"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidInput(
                f"messages.{i}.content: must be a string or a list of parts",
                field=f"messages.{i}.content",
            )
        if content is None and m["role"] in ("user", "system") and not m.get("tool_calls"):
            raise InvalidInput(f"messages.{i}.content: is required", field=f"messages.{i}.content")


def validate_counts(body: dict[str, Any]) -> None:
    """Refuse ``max_tokens`` (and the other counts read here) unless absent, null or a
    positive integer: a string would fail the quota's estimate, a negative one lower it."""
    for name in _COUNTS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInput(f"{name}: must be a positive integer", field=name)
