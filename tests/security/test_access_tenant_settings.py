"""Finding 3: project-scoped keys and team/project roles reached tenant-wide settings.

An admin key restricted to one project created, changed and deleted the tenant's
provider credentials and router configuration. Tenant-wide objects now need the
permission held on the tenant by a key that is not restricted to a narrower scope.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import ok
from tests.conftest import Api
from tests.security.access_helpers import narrow_world

CREDENTIAL = {"provider": "openai", "api_key": "sk-owner-secret-0001", "base_url": ""}


@pytest.mark.parametrize("who", ["project key", "team admin", "project admin"])
async def test_narrow_principal_cannot_touch_provider_credentials_or_routing(
    api: Api, owner: httpx.AsyncClient, who: str
) -> None:
    w = await narrow_world(api, owner)
    ok(await owner.put("/v1/gateway/providers/openai", json=CREDENTIAL))
    ok(await owner.put("/v1/gateway/config", json={"aliases": {"fast": "gpt-4o-mini"}}))
    stolen = {"provider": "openai", "api_key": "sk-attacker-000000001", "base_url": ""}
    async with api.client(w.keys[who]) as attacker:
        attempts = [
            await attacker.put("/v1/gateway/providers/openai", json=stolen),
            await attacker.put("/v1/gateway/providers/mine", json=stolen),
            await attacker.delete("/v1/gateway/providers/openai"),
            await attacker.put("/v1/gateway/config", json={"aliases": {"fast": "evil"}}),
            await attacker.get("/v1/gateway/providers"),
            await attacker.get("/v1/gateway/config"),
        ]
    for r in attempts:
        assert r.status_code == 403, f"{r.request.method} {r.request.url}: {r.text}"
        assert r.json()["error"]["type"] == "permission_denied"
    items = ok(await owner.get("/v1/gateway/providers"))["items"]
    assert [i["name"] for i in items] == ["openai"]
    assert ok(await owner.get("/v1/gateway/config"))["aliases"] == {"fast": "gpt-4o-mini"}


async def test_project_key_cannot_change_other_tenant_wide_settings(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    async with api.client(w.keys["project key"]) as attacker:
        attempts = [
            await attacker.patch(f"/v1/tenants/{tenant_id}", json={"name": "pwned"}),
            await attacker.put("/v1/sso/policy", json={"require_sso": False}),
            await attacker.put("/v1/quotas", json={"scope": "tenant", "limits": {}}),
            await attacker.post("/v1/roles", json={"name": "x", "permissions": ["teams:read"]}),
            await attacker.post("/v1/users", json={"name": "sock-puppet"}),
            await attacker.post("/v1/teams", json={"name": "new-team"}),
            await attacker.get("/v1/audit/events"),
        ]
    for r in attempts:
        assert r.status_code == 403, f"{r.request.method} {r.request.url}: {r.text}"


async def test_tenant_admin_with_an_unrestricted_key_still_can(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    admin_user = w.users["project key"]
    unrestricted = ok(await owner.post("/v1/keys", json={"user_id": admin_user}), 201)["token"]
    async with api.client(unrestricted) as admin:
        ok(await admin.put("/v1/gateway/providers/openai", json=CREDENTIAL))
        ok(await admin.put("/v1/gateway/config", json={"aliases": {"fast": "gpt-4o-mini"}}))
        ok(await admin.delete("/v1/gateway/providers/openai"))
