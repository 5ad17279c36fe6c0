"""Tenant B's valid key against tenant A's objects, for every endpoint of the app.

The route list comes from the app itself: an endpoint added without a case here fails
``test_every_route_has_an_isolation_case``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from musubi.api.app import PUBLIC_PATHS, api_routes, create_app
from musubi.audit.models import AuditEvent
from musubi.context import SYSTEM_TENANT, system_scope
from musubi.settings import Settings
from tests.api.helpers import new_tenant, ok
from tests.batch.isolation_cases import BATCH_CASES
from tests.bulk.isolation_cases import BULK_CASES
from tests.conftest import Api
from tests.finetune.isolation_cases import FINETUNE_CASES
from tests.gateway.isolation_cases import GATEWAY_CASES
from tests.integrations.isolation_cases import INTEGRATION_CASES
from tests.knowledge.isolation_cases import KNOWLEDGE_CASES, KNOWLEDGE_OBJECT_ROUTES
from tests.orchestrator.isolation_cases import RUN_CASES, RUN_OBJECT_ROUTES
from tests.sso.isolation_cases import SSO_CASES


@dataclass
class World:
    a: httpx.AsyncClient  # tenant A's owner (the root tenant)
    b: httpx.AsyncClient  # tenant B's owner: a valid key with every permission in B
    ids: dict[str, str]  # A's objects
    a_tenant: str
    b_tenant: str


Case = Callable[[World], Awaitable[None]]

# Each object route of A's, and the kind of object its path id names.
OBJECT_ROUTES = {
    "/v1/tenants/{tenant_id}": "tenant",
    "/v1/teams/{team_id}": "team",
    "/v1/projects/{project_id}": "project",
    "/v1/users/{user_id}": "user",
    "/v1/keys/{key_id}": "key",
    "/v1/roles/{role_id}": "role",
    "/v1/role-assignments/{assignment_id}": "assignment",
    "/v1/quotas/{policy_id}": "quota",
    "/v1/projects/{project_id}/sdd/requirements": "project",
    "/v1/projects/{project_id}/sdd/workflow": "project",
    "/v1/projects/{project_id}/sdd/gates": "project",
    "/v1/projects/{project_id}/sdd/trace": "project",
    "/v1/projects/{project_id}/sdd/trace/recover": "project",
    "/v1/projects/{project_id}/spend": "project",
    **KNOWLEDGE_OBJECT_ROUTES,
    **RUN_OBJECT_ROUTES,
}
PATCH_BODIES = {
    "tenant": {"name": "stolen"},
    "team": {"description": "stolen"},
    "project": {"description": "stolen"},
    "user": {"disabled": True},
    "role": {"description": "stolen"},
}


def object_case(method: str, path: str) -> Case:
    kind = OBJECT_ROUTES[path]

    async def case(w: World) -> None:
        url = re.sub(r"\{[^}]+\}", w.ids[kind], path)
        body = PATCH_BODIES.get(kind) if method == "PATCH" else None
        r = await w.b.request(method, url, json=body)
        assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text}"
        assert w.ids[kind] in r.json()["error"]["message"]  # names what was asked, nothing more

    return case


def list_case(path: str, key: str = "items") -> Case:
    async def case(w: World) -> None:
        r = await w.b.get(path)
        text = r.text
        assert r.status_code == 200, text
        for kind, id_ in w.ids.items():
            assert id_ not in text, f"GET {path} leaks A's {kind}"
        assert w.a_tenant not in text

    return case


async def create_team_in_b(w: World) -> None:
    team = ok(await w.b.post("/v1/teams", json={"name": "core"}), 201)  # same name as A's
    assert team["tenant_id"] == w.b_tenant


async def create_project_in_a_team(w: World) -> None:
    r = await w.b.post("/v1/projects", json={"name": "p", "team_id": w.ids["team"]})
    assert r.status_code == 404, r.text


async def create_key_for_a_user(w: World) -> None:
    r = await w.b.post("/v1/keys", json={"user_id": w.ids["user"]})
    assert r.status_code == 404, r.text
    r = await w.b.post("/v1/keys", json={"project_id": w.ids["project"]})
    assert r.status_code == 404, r.text


async def assign_role_to_a_user(w: World) -> None:
    r = await w.b.post("/v1/role-assignments", json={"user_id": w.ids["user"], "role": "owner"})
    assert r.status_code == 404, r.text
    b_user = ok(await w.b.post("/v1/users", json={"name": "b-user"}), 201)
    r = await w.b.post(
        "/v1/role-assignments",
        json={
            "user_id": b_user["id"],
            "role": "viewer",
            "scope": "project",
            "scope_id": w.ids["project"],
        },
    )
    assert r.status_code == 404, r.text
    r = await w.b.post(
        "/v1/role-assignments",
        json={"user_id": b_user["id"], "role": "a-custom"},  # A's custom role name
    )
    assert r.status_code == 422, r.text


async def create_role_in_b(w: World) -> None:
    ok(await w.b.post("/v1/roles", json={"name": "a-custom", "permissions": ["teams:read"]}), 201)


async def create_tenant_from_b(w: World) -> None:
    r = await w.b.post("/v1/tenants", json={"name": "c"})
    assert r.status_code == 403, r.text  # only the root tenant administers tenants


async def set_quota_on_a_project(w: World) -> None:
    body = {"scope": "project", "scope_id": w.ids["project"], "limits": {"tokens_per_day": 1}}
    r = await w.b.put("/v1/quotas", json=body)
    assert r.status_code == 404, r.text
    ok(await w.b.put("/v1/quotas", json={"scope": "tenant", "limits": {"tokens_per_day": 5}}))


async def me_is_b(w: World) -> None:
    assert ok(await w.b.get("/v1/me"))["tenant_id"] == w.b_tenant


async def permissions_list(w: World) -> None:
    assert "teams:read" in ok(await w.b.get("/v1/permissions"))


async def verify_only_b(w: World) -> None:
    assert ok(await w.b.post("/v1/audit/verify"))["tenant_id"] == w.b_tenant


async def purge_only_b(w: World) -> None:
    ok(await w.b.post("/v1/audit/purge"))
    assert ok(await w.a.post("/v1/audit/verify"))["ok"]


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/v1/me"): me_is_b,
    ("GET", "/v1/permissions"): permissions_list,
    ("GET", "/v1/tenants"): list_case("/v1/tenants"),
    ("POST", "/v1/tenants"): create_tenant_from_b,
    ("GET", "/v1/teams"): list_case("/v1/teams"),
    ("POST", "/v1/teams"): create_team_in_b,
    ("GET", "/v1/projects"): list_case("/v1/projects"),
    ("POST", "/v1/projects"): create_project_in_a_team,
    ("GET", "/v1/users"): list_case("/v1/users"),
    ("POST", "/v1/users"): lambda w: _ok_create(w, "/v1/users", {"name": "owner2"}),
    ("GET", "/v1/keys"): list_case("/v1/keys"),
    ("POST", "/v1/keys"): create_key_for_a_user,
    ("GET", "/v1/roles"): list_case("/v1/roles"),
    ("POST", "/v1/roles"): create_role_in_b,
    ("GET", "/v1/role-assignments"): list_case("/v1/role-assignments"),
    ("POST", "/v1/role-assignments"): assign_role_to_a_user,
    ("GET", "/v1/audit/events"): list_case("/v1/audit/events"),
    ("GET", "/v1/audit/export"): list_case("/v1/audit/export"),
    ("POST", "/v1/audit/verify"): verify_only_b,
    ("POST", "/v1/audit/purge"): purge_only_b,
    **GATEWAY_CASES,
    **BATCH_CASES,
    **FINETUNE_CASES,
    **KNOWLEDGE_CASES,
    **RUN_CASES,
    **INTEGRATION_CASES,
    **SSO_CASES,
    **BULK_CASES,
    ("GET", "/v1/quotas"): list_case("/v1/quotas"),
    ("PUT", "/v1/quotas"): set_quota_on_a_project,
    ("GET", "/v1/usage"): list_case("/v1/usage"),
}


async def _ok_create(w: World, path: str, body: dict[str, Any]) -> None:
    created = ok(await w.b.post(path, json=body), 201)
    assert created["tenant_id"] == w.b_tenant


def app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    found = set()
    for route in api_routes(app.routes):
        if route.path not in PUBLIC_PATHS:
            found |= {(m, route.path) for m in route.methods}
    return found


def _with_object_cases(routes: set[tuple[str, str]]) -> dict[tuple[str, str], Case]:
    """Every method on an object route gets the 404 case; other routes need their own."""
    cases = dict(CASES)
    for method, path in routes:
        if path in OBJECT_ROUTES:
            cases[(method, path)] = object_case(method, path)
    return cases


ALL_CASES = _with_object_cases(app_routes())


def test_every_route_has_an_isolation_case() -> None:
    routes = app_routes()
    assert set(OBJECT_ROUTES) <= {p for _, p in routes}
    missing = routes - set(ALL_CASES)
    assert not missing, f"endpoints without a cross-tenant case: {sorted(missing)}"
    stale = set(CASES) - routes
    assert not stale, f"cases for endpoints the app does not have: {sorted(stale)}"


@pytest.fixture
async def world(api: Api, owner: httpx.AsyncClient) -> Any:
    a_tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    team = ok(await owner.post("/v1/teams", json={"name": "core"}), 201)
    project = ok(await owner.post("/v1/projects", json={"name": "p", "team_id": team["id"]}), 201)
    user = ok(await owner.post("/v1/users", json={"name": "alice"}), 201)
    key = ok(await owner.post("/v1/keys", json={"user_id": user["id"]}), 201)
    role = ok(
        await owner.post("/v1/roles", json={"name": "a-custom", "permissions": ["teams:read"]}), 201
    )
    assignment = ok(
        await owner.post("/v1/role-assignments", json={"user_id": user["id"], "role": "a-custom"}),
        201,
    )
    quota = ok(
        await owner.put(
            "/v1/quotas",
            json={"scope": "project", "scope_id": project["id"], "limits": {"tokens_per_day": 9}},
        )
    )
    b_tenant, b_key = await new_tenant(owner, "tenant-b")
    ids = {
        "tenant": a_tenant,
        "team": team["id"],
        "project": project["id"],
        "user": user["id"],
        "key": key["key"]["id"],
        "role": role["id"],
        "assignment": assignment["id"],
        "quota": quota["id"],
    }
    async with api.client(b_key) as b:
        yield World(owner, b, ids, a_tenant, b_tenant)


@pytest.mark.parametrize("route", sorted(app_routes()), ids=lambda r: f"{r[0]} {r[1]}")
async def test_tenant_b_cannot_reach_tenant_a(
    route: tuple[str, str], world: World, api: Api
) -> None:
    await ALL_CASES[route](world)
    # A's objects are all still there and unchanged.
    a = world.a
    assert ok(await a.get(f"/v1/teams/{world.ids['team']}"))["description"] == ""
    assert ok(await a.get(f"/v1/projects/{world.ids['project']}"))["description"] == ""
    assert ok(await a.get(f"/v1/users/{world.ids['user']}"))["disabled"] is False
    assert ok(await a.get(f"/v1/keys/{world.ids['key']}"))["state"] == "active"
    assert ok(await a.get(f"/v1/roles/{world.ids['role']}"))["description"] == ""
    assert ok(await a.get(f"/v1/tenants/{world.a_tenant}"))["name"] == "default"
    assert ok(await a.get(f"/v1/quotas/{world.ids['quota']}"))["tokens_per_day"] == 9
    assert ok(await a.post("/v1/audit/verify"))["ok"]
    # A cross-tenant attempt on an object id: in the caller's log, the same "not found" as
    # for any unknown id (so the log does not tell that the id exists elsewhere); in the
    # operator's log, a security event naming the caller's tenant (written after the answer).
    if route[1] in OBJECT_ROUTES and route[1] != "/v1/tenants/{tenant_id}":
        kind = OBJECT_ROUTES[route[1]]
        probes = ok(await world.b.get("/v1/audit/events", params={"action": "access.not_found"}))
        assert [e["target"] for e in probes["items"]] == [world.ids[kind]]
        events: list[AuditEvent] = []
        for _ in range(100):
            with system_scope():
                async with api.state.db.read() as s:
                    query = select(AuditEvent).where(AuditEvent.action == "security.cross_tenant")
                    events = list((await s.scalars(query)).all())
            if events:
                break
            await asyncio.sleep(0.05)
        assert [(e.tenant_id, e.detail["tenant_id"]) for e in events] == [
            (SYSTEM_TENANT, world.b_tenant)
        ]
