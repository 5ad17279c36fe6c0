"""Finding 5: scoped roles escalated to tenant-wide.

The "you cannot grant what you lack" check added up the permissions of every scope: a
project admin holding a tenant-level custom role with only ``roles:write`` made itself
tenant admin; a team admin with tenant-level ``users:write`` and ``keys:write`` minted a
key for the tenant admin. Now a grant at scope S needs each permission held at S or above,
and a key is never minted for a user holding more than the minter at any scope.
"""

from __future__ import annotations

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api
from tests.security.access_helpers import narrow_world


async def _custom_role(owner: httpx.AsyncClient, name: str, perms: list[str]) -> None:
    ok(await owner.post("/v1/roles", json={"name": name, "permissions": perms}), 201)


async def _grant(owner: httpx.AsyncClient, user_id: str, role: str) -> None:
    body = {"user_id": user_id, "role": role}
    ok(await owner.post("/v1/role-assignments", json=body), 201)


async def _keys_of(owner: httpx.AsyncClient, *users: str) -> list[str]:
    return [k["id"] for k in ok(await owner.get("/v1/keys"))["items"] if k["user_id"] in users]


async def test_project_admin_with_tenant_roles_write_cannot_make_itself_tenant_admin(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    await _custom_role(owner, "role-clerk", ["roles:write"])
    me = w.users["project admin"]
    await _grant(owner, me, "role-clerk")
    async with api.client(w.keys["project admin"]) as attacker:
        r = await attacker.post("/v1/role-assignments", json={"user_id": me, "role": "admin"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["type"] == "permission_denied"
        # granting what it holds on its project, on that project, is still fine
        body = {"user_id": me, "role": "developer", "scope": "project", "scope_id": w.project_in}
        ok(await attacker.post("/v1/role-assignments", json=body), 201)
        # and on another project it holds nothing: refused
        body["scope_id"] = w.project_out
        assert (await attacker.post("/v1/role-assignments", json=body)).status_code == 403
    tenant_roles = [
        a["role"]
        for a in ok(await owner.get("/v1/role-assignments", params={"user_id": me}))["items"]
        if a["scope"] == "tenant"
    ]
    assert tenant_roles == ["role-clerk"]


async def test_project_admin_cannot_write_a_custom_role_with_its_project_permissions(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    await _custom_role(owner, "role-clerk", ["roles:write"])
    await _grant(owner, w.users["project admin"], "role-clerk")
    async with api.client(w.keys["project admin"]) as attacker:
        body = {"name": "sneaky", "permissions": ["providers:write", "users:write"]}
        assert (await attacker.post("/v1/roles", json=body)).status_code == 403
        clerk2 = {"name": "clerk2", "permissions": ["roles:write"]}
        ok(await attacker.post("/v1/roles", json=clerk2), 201)
        role = ok(await owner.get("/v1/roles"))["items"][-1]
        patch = {"permissions": ["roles:write", "audit:read"]}
        assert (await attacker.patch(f"/v1/roles/{role['id']}", json=patch)).status_code == 403


async def test_team_admin_with_tenant_users_and_keys_write_cannot_mint_a_key_for_the_admin(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    await _custom_role(owner, "key-clerk", ["users:write", "keys:write"])
    await _grant(owner, w.users["team admin"], "key-clerk")
    tenant_admin, _ = await user_with_role(owner, "the-admin", "admin")
    before = await _keys_of(owner, tenant_admin, w.owner_id)
    async with api.client(w.keys["team admin"]) as attacker:
        for target in (tenant_admin, w.owner_id):
            r = await attacker.post("/v1/keys", json={"user_id": target})
            assert r.status_code == 403, r.text
            # restricted to its own team's project does not help: the key would still
            # act, and be audited, as that admin
            body = {"user_id": target, "project_id": w.project_in}
            r = await attacker.post("/v1/keys", json=body)
            assert r.status_code == 403, r.text
        # a user holding less than the team admin at every scope: allowed
        dev, _ = await user_with_role(owner, "a-dev", "developer", scope="team", scope_id=w.team_in)
        ok(await attacker.post("/v1/keys", json={"user_id": dev}), 201)
    assert await _keys_of(owner, tenant_admin, w.owner_id) == before


async def test_bulk_key_import_follows_the_same_rule(api: Api, owner: httpx.AsyncClient) -> None:
    w = await narrow_world(api, owner)
    await _custom_role(owner, "key-clerk", ["users:write", "keys:write"])
    await _grant(owner, w.users["team admin"], "key-clerk")
    tenant_admin, _ = await user_with_role(owner, "the-admin", "admin")
    before = await _keys_of(owner, tenant_admin)
    async with api.client(w.keys["team admin"]) as attacker:
        report = ok(await attacker.post("/v1/bulk/keys", json=[{"user": tenant_admin}]))
    assert report["failed"] == 1, report
    assert "permissions you lack" in report["results"][0]["error"]
    assert await _keys_of(owner, tenant_admin) == before
