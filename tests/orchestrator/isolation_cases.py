"""Isolation cases of the run routes, for tests/api/test_isolation.py.

A real run of tenant A driven at by tenant B is in tests/orchestrator/test_runs.py
(``test_another_tenant_cannot_see_or_drive_a_run``); here B aims at A's project, and at run
ids that are not its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["RUN_CASES", "RUN_OBJECT_ROUTES"]

# Routes of A's project id where every method needs no body (none: POST needs one).
RUN_OBJECT_ROUTES: dict[str, str] = {}

_BODY = {"idea": "Export orders as CSV"}


def _project_post(suffix: str) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        project = w.ids["project"]
        r = await w.b.post(f"/v1/projects/{project}/runs{suffix}", json=_BODY)
        assert r.status_code == 404, r.text
        assert project in r.json()["error"]["message"]

    return case


async def _list_a_project(w: Any) -> None:
    project = w.ids["project"]
    r = await w.b.get(f"/v1/projects/{project}/runs")
    assert r.status_code == 404, r.text
    assert project in r.json()["error"]["message"]


def _run_route(method: str, suffix: str) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        r = await w.b.request(method, f"/v1/runs/run_0123456789abcdef{suffix}")
        assert r.status_code == 404, r.text

    return case


RUN_CASES = {
    ("GET", "/v1/projects/{project_id}/runs"): _list_a_project,
    ("POST", "/v1/projects/{project_id}/runs"): _project_post(""),
    ("POST", "/v1/projects/{project_id}/runs/estimate"): _project_post("/estimate"),
    ("GET", "/v1/runs/{run_id}"): _run_route("GET", ""),
    ("GET", "/v1/runs/{run_id}/events"): _run_route("GET", "/events"),
    ("POST", "/v1/runs/{run_id}/approve"): _run_route("POST", "/approve"),
    ("POST", "/v1/runs/{run_id}/cancel"): _run_route("POST", "/cancel"),
}
