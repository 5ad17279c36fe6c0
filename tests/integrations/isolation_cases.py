"""Isolation cases of the integration routes, for tests/api/test_isolation.py: tenant B
aims at tenant A's project (every route names it in its path) and gets the same 404 as
for an unknown project. A real integration of A's, probed by B, is in
tests/integrations/test_api.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["INTEGRATION_CASES"]

BASE = "/v1/projects/{project_id}/integrations"
_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", BASE + "/{kind}"): {
        "target": "PROJ",
        "base_url": "https://example.atlassian.net",
        "token": "t-stolen-0001",
    },
    ("POST", BASE + "/{kind}/conflicts/{item_id}/resolve"): {"keep": "local"},
    ("POST", BASE + "/{kind}/notify"): {"kind": "run_finished", "title": "x"},
}
ROUTES = [
    ("GET", BASE),
    ("PUT", BASE + "/{kind}"),
    ("GET", BASE + "/{kind}"),
    ("DELETE", BASE + "/{kind}"),
    ("POST", BASE + "/{kind}/sync"),
    ("GET", BASE + "/{kind}/outbox"),
    ("POST", BASE + "/{kind}/outbox/retry"),
    ("GET", BASE + "/{kind}/conflicts"),
    ("POST", BASE + "/{kind}/conflicts/{item_id}/resolve"),
    ("POST", BASE + "/{kind}/notify"),
    ("POST", BASE + "/{kind}/reconcile"),
]


def _case(method: str, path: str) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        project = w.ids["project"]
        url = path.format(project_id=project, kind="jira", item_id="REQ-1", name="ci", run="ppr_1")
        r = await w.b.request(method, url, json=_BODIES.get((method, path)))
        assert r.status_code == 404, r.text
        assert project in r.json()["error"]["message"]

    return case


INTEGRATION_CASES = {route: _case(*route) for route in ROUTES}

# The pipelines of a project (musubi.api.routers.pipelines).
PIPES = "/v1/projects/{project_id}/pipelines"
_BODIES |= {
    ("PUT", PIPES + "/{name}"): {
        "kind": "gitlab",
        "target": "acme/app",
        "token": "t-stolen-0001",
        "trigger_token": "t-stolen-0002",
    },
    ("POST", PIPES + "/{name}/runs"): {"ref": "main"},
}
for _route in [
    ("GET", PIPES),
    ("PUT", PIPES + "/{name}"),
    ("GET", PIPES + "/{name}"),
    ("DELETE", PIPES + "/{name}"),
    ("POST", PIPES + "/{name}/runs"),
    ("GET", PIPES + "/{name}/runs"),
    ("GET", PIPES + "/{name}/runs/{run}"),
]:
    INTEGRATION_CASES[_route] = _case(*_route)
