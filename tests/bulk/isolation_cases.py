"""Cross-tenant cases of the bulk routes, used by tests/api/test_isolation.py.

Tenant B's owner imports items naming A's objects by id: each item fails as not found,
is recorded as a cross-tenant attempt in B's audit log, and nothing of A's changes. B's
exports hold none of A's ids or names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.api.helpers import ok

__all__ = ["BULK_CASES"]

Case = Callable[[Any], Awaitable[None]]
Items = Callable[[Any, str], list[dict[str, Any]]]  # (world, B's own user id) -> items


def _import(kind: str, items: Items) -> Case:
    async def case(w: Any) -> None:
        me = ok(await w.b.get("/v1/me"))["user_id"]
        body = items(w, me)
        report = ok(await w.b.post(f"/v1/bulk/{kind}", json=body))
        assert report["failed"] == len(body), report
        for result, item in zip(report["results"], body, strict=True):
            assert "not found" in result["error"], result
            assert any(w.ids[k] in result["error"] for k in ("user", "team", "project")), item
        events = ok(await w.b.get("/v1/audit/events", params={"action": "access.not_found"}))
        assert len(events["items"]) == len(body), events
        export = await w.b.get(f"/v1/bulk/{kind}")
        assert all(i not in _text(export) for i in w.ids.values())

    return case


async def _import_users(w: Any) -> None:
    # "alice" is the name of A's user: B gets its own alice; A's stays as it was.
    report = ok(await w.b.post("/v1/bulk/users", json=[{"name": "alice", "disabled": True}]))
    [result] = report["results"]
    assert result["status"] == "created", report
    assert ok(await w.b.get(f"/v1/users/{result['id']}"))["tenant_id"] == w.b_tenant
    assert result["id"] != w.ids["user"]


def _export(kind: str) -> Case:
    async def case(w: Any) -> None:
        for fmt in ("json", "csv"):
            text = _text(await w.b.get(f"/v1/bulk/{kind}", params={"format": fmt}))
            for name, id_ in w.ids.items():
                assert id_ not in text, f"B's {kind} export leaks A's {name}"
            for a_name in ("alice", "a-custom", "core"):
                assert a_name not in text, f"B's {kind} export leaks A's {a_name!r}"

    return case


def _text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.text


BULK_CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/bulk/users"): _import_users,
    ("GET", "/v1/bulk/users"): _export("users"),
    ("POST", "/v1/bulk/keys"): _import(
        "keys",
        lambda w, me: [{"user": w.ids["user"]}, {"user": me, "project": w.ids["project"]}],
    ),
    ("GET", "/v1/bulk/keys"): _export("keys"),
    ("POST", "/v1/bulk/projects"): _import(
        "projects", lambda w, me: [{"name": "p2", "team": w.ids["team"]}]
    ),
    ("GET", "/v1/bulk/projects"): _export("projects"),
    ("POST", "/v1/bulk/assignments"): _import(
        "assignments",
        lambda w, me: [
            {"user": w.ids["user"], "role": "viewer"},
            {"user": me, "role": "viewer", "scope": "project", "target": w.ids["project"]},
            {"user": me, "role": "viewer", "scope": "team", "target": w.ids["team"]},
        ],
    ),
    ("GET", "/v1/bulk/assignments"): _export("assignments"),
}
