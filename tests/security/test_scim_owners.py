"""Finding 6 (SCIM): a provisioning key could take the tenant away from its owners.

A provisioner-only SCIM key disabled, renamed and deleted owners, and an owner could
delete or disable itself through SCIM. Now SCIM cannot change owners unless the tenant's
SSO policy sets ``scim_manages_owners``; and even then the last owner stays.
"""

from __future__ import annotations

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_TYPE = "application/scim+json"


def _deactivate() -> dict[str, object]:
    return {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}


def _rename(name: str) -> dict[str, object]:
    return {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "userName", "value": name}],
    }


async def _attacks(scim: httpx.AsyncClient, user_id: str) -> list[httpx.Response]:
    url = f"/scim/v2/Users/{user_id}"
    return [
        await scim.patch(url, json=_deactivate()),
        await scim.patch(url, json=_rename("pwned")),
        await scim.put(url, json={"userName": "pwned", "active": False}),
        await scim.delete(url),
    ]


async def test_provisioner_key_cannot_touch_owners(api: Api, owner: httpx.AsyncClient) -> None:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    second_owner, _ = await user_with_role(owner, "second-owner", "owner")
    _, scim_key = await user_with_role(owner, "okta", "provisioner")
    async with api.client(scim_key) as scim:
        for target in (owner_id, second_owner):
            for r in await _attacks(scim, target):
                assert r.status_code == 403, f"{r.request.method} {r.request.url}: {r.text}"
                assert r.headers["content-type"].startswith(SCIM_TYPE)
                assert "scim_manages_owners" in r.json()["detail"]
            # an IdP re-sending an owner's current values is not a change: accepted
            user = ok(await scim.get(f"/scim/v2/Users/{target}"))
            same = {"userName": user["userName"], "displayName": user["displayName"]}
            ok(await scim.put(f"/scim/v2/Users/{target}", json={**same, "active": True}))
        # people who are not owners are SCIM's to manage, as before
        person = ok(await scim.post("/scim/v2/Users", json={"userName": "p@example.com"}), 201)
        ok(await scim.patch(f"/scim/v2/Users/{person['id']}", json=_deactivate()))
        assert (await scim.delete(f"/scim/v2/Users/{person['id']}")).status_code == 204
    for target in (owner_id, second_owner):
        user = ok(await owner.get(f"/v1/users/{target}"))
        assert user["disabled"] is False and user["name"] != "pwned"
    ok(await owner.get("/v1/me"))


async def test_owner_cannot_lock_the_tenant_out_through_scim(
    api: Api, owner: httpx.AsyncClient
) -> None:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    for r in await _attacks(owner, owner_id):  # the owner's key holds scim:provision too
        assert r.status_code == 403, r.text
    ok(await owner.put("/v1/sso/policy", json={"scim_manages_owners": True}))
    # allowed to manage owners now, SCIM still cannot remove the last one
    r = await owner.patch(f"/scim/v2/Users/{owner_id}", json=_deactivate())
    assert r.status_code == 409 and "last owner" in r.json()["detail"], r.text
    r = await owner.delete(f"/scim/v2/Users/{owner_id}")
    assert r.status_code == 409 and "last owner" in r.json()["detail"], r.text
    ok(await owner.patch(f"/scim/v2/Users/{owner_id}", json=_rename("renamed-owner")))
    assert ok(await owner.get("/v1/me"))["user_id"] == owner_id


async def test_scim_may_manage_owners_when_the_tenant_says_so(
    api: Api, owner: httpx.AsyncClient
) -> None:
    second_owner, second_key = await user_with_role(owner, "second-owner", "owner")
    _, scim_key = await user_with_role(owner, "okta", "provisioner")
    ok(await owner.put("/v1/sso/policy", json={"scim_manages_owners": True}))
    assert ok(await owner.get("/v1/sso/policy"))["scim_manages_owners"] is True
    async with api.client(scim_key) as scim:
        ok(await scim.patch(f"/scim/v2/Users/{second_owner}", json=_deactivate()))
    async with api.client(second_key) as deprovisioned:
        assert (await deprovisioned.get("/v1/me")).status_code == 401
