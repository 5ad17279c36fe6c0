"""Roles at tenant, team and project level; custom roles; no privilege escalation."""

from __future__ import annotations

import httpx

from musubi.access.permissions import PERMISSIONS
from musubi.api.app import PUBLIC_PATHS, api_routes, create_app
from musubi.api.deps import ROUTE_SCOPES, declared_permission, declared_scope
from musubi.settings import Settings
from tests.api.helpers import ok, user_with_role
from tests.conftest import Api


def test_every_route_declares_a_permission() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    undeclared = []
    for route in api_routes(app.routes):
        if route.path in PUBLIC_PATHS:
            continue
        declared = [declared_permission(d.call) for d in route.dependant.dependencies if d.call]
        perms = [p for ok_, p in declared if ok_]
        if not perms:
            undeclared.append(f"{sorted(route.methods)} {route.path}")
        for p in perms:
            assert p is None or p in PERMISSIONS, f"{route.path} declares unknown {p!r}"
    assert not undeclared, f"routes without a declared permission: {undeclared}"


def test_every_route_declares_its_scope() -> None:
    """Beside its permission, each route says where it must be held: on the tenant, on a
    team or project it acts on, or on the caller's own things (see musubi.api.deps)."""
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    unscoped = []
    for route in api_routes(app.routes):
        if route.path in PUBLIC_PATHS:
            continue
        scopes = [declared_scope(d.call) for d in route.dependant.dependencies if d.call]
        if not [s for s in scopes if s in ROUTE_SCOPES]:
            unscoped.append(f"{sorted(route.methods)} {route.path}")
    assert not unscoped, f"routes without a declared scope: {unscoped}"


async def test_team_role_applies_to_that_team_only(api: Api, owner: httpx.AsyncClient) -> None:
    t1 = ok(await owner.post("/v1/teams", json={"name": "t1"}), 201)
    t2 = ok(await owner.post("/v1/teams", json={"name": "t2"}), 201)
    p1 = ok(await owner.post("/v1/projects", json={"name": "p1", "team_id": t1["id"]}), 201)
    p2 = ok(await owner.post("/v1/projects", json={"name": "p2", "team_id": t2["id"]}), 201)
    _, key = await user_with_role(owner, "lead", "maintainer", scope="team", scope_id=t1["id"])
    async with api.client(key) as lead:
        assert [t["name"] for t in ok(await lead.get("/v1/teams"))["items"]] == ["t1"]
        assert [p["name"] for p in ok(await lead.get("/v1/projects"))["items"]] == ["p1"]
        ok(await lead.patch(f"/v1/projects/{p1['id']}", json={"description": "mine"}))
        assert (
            await lead.patch(f"/v1/projects/{p2['id']}", json={"description": "x"})
        ).status_code == 403
        assert (await lead.get(f"/v1/teams/{t2['id']}")).status_code == 403
        ok(await lead.post("/v1/projects", json={"name": "p3", "team_id": t1["id"]}), 201)
        assert (await lead.post("/v1/projects", json={"name": "p4"})).status_code == 403
        assert (await lead.get("/v1/users")).status_code == 403


async def test_project_key_acts_only_inside_its_project(api: Api, owner: httpx.AsyncClient) -> None:
    p1 = ok(await owner.post("/v1/projects", json={"name": "p1"}), 201)
    p2 = ok(await owner.post("/v1/projects", json={"name": "p2"}), 201)
    scoped = ok(await owner.post("/v1/keys", json={"project_id": p1["id"]}), 201)
    async with api.client(scoped["token"]) as client:
        assert [p["id"] for p in ok(await client.get("/v1/projects"))["items"]] == [p1["id"]]
        ok(await client.get(f"/v1/projects/{p1['id']}"))
        assert (await client.get(f"/v1/projects/{p2['id']}")).status_code == 403
        assert (await client.post("/v1/teams", json={"name": "x"})).status_code == 403
        r = await client.post("/v1/keys", json={"project_id": p2["id"]})
        assert r.status_code == 403


async def test_custom_role(api: Api, owner: httpx.AsyncClient) -> None:
    ok(
        await owner.post(
            "/v1/roles", json={"name": "team-admin", "permissions": ["teams:read", "teams:write"]}
        ),
        201,
    )
    bad = await owner.post("/v1/roles", json={"name": "x", "permissions": ["teams:fly"]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "permissions"
    _, key = await user_with_role(owner, "ta", "team-admin")
    async with api.client(key) as client:
        ok(await client.post("/v1/teams", json={"name": "new"}), 201)
        assert (await client.get("/v1/projects")).status_code == 403


async def test_no_privilege_escalation(api: Api, owner: httpx.AsyncClient) -> None:
    owner_user = ok(await owner.get("/v1/me"))["user_id"]
    _, admin_key = await user_with_role(owner, "adm", "admin")
    async with api.client(admin_key) as admin:
        me = ok(await admin.get("/v1/me"))
        r = await admin.post(
            "/v1/role-assignments", json={"user_id": me["user_id"], "role": "owner"}
        )
        assert r.status_code == 403  # owner holds permissions admin lacks
        r = await admin.post("/v1/keys", json={"user_id": owner_user})
        assert r.status_code == 403  # a key for the owner would be the owner's power
        r = await admin.post("/v1/roles", json={"name": "sneaky", "permissions": ["audit:purge"]})
        assert r.status_code == 403
        ok(
            await admin.post(
                "/v1/role-assignments", json={"user_id": me["user_id"], "role": "viewer"}
            ),
            201,
        )


async def test_role_change_takes_effect_on_the_next_request(
    api: Api, owner: httpx.AsyncClient
) -> None:
    user_id, key = await user_with_role(owner, "dev", "developer")
    async with api.client(key) as dev:
        assert (await dev.post("/v1/teams", json={"name": "x"})).status_code == 403
        a = ok(
            await owner.post(
                "/v1/role-assignments", json={"user_id": user_id, "role": "maintainer"}
            ),
            201,
        )
        ok(await dev.post("/v1/teams", json={"name": "x"}), 201)
        await owner.delete(f"/v1/role-assignments/{a['id']}")
        assert (await dev.post("/v1/teams", json={"name": "y"})).status_code == 403
        ok(await owner.patch(f"/v1/users/{user_id}", json={"disabled": True}))
        assert (await dev.get("/v1/me")).status_code == 401
