"""Isolation cases of the knowledge routes, for tests/api/test_isolation.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["KNOWLEDGE_CASES", "KNOWLEDGE_OBJECT_ROUTES"]

# Routes whose only input is A's project id: the generic 404 case covers them.
KNOWLEDGE_OBJECT_ROUTES = {
    "/v1/projects/{project_id}/knowledge": "project",
    "/v1/projects/{project_id}/knowledge/index": "project",
}


def _post_404(suffix: str, body: dict[str, Any]) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        project = w.ids["project"]
        r = await w.b.post(f"/v1/projects/{project}/knowledge/{suffix}", json=body)
        assert r.status_code == 404, r.text
        assert project in r.json()["error"]["message"]

    return case


KNOWLEDGE_CASES = {
    ("POST", "/v1/projects/{project_id}/knowledge/search"): _post_404(
        "search", {"query": "invoice"}
    ),
    ("POST", "/v1/projects/{project_id}/knowledge/context"): _post_404(
        "context", {"task": "fix the invoice total"}
    ),
}
