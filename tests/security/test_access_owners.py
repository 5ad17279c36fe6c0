"""Findings 12 and 6 (API side): admins acted on owners; an owner could lock itself out.

Admins revoked owners' keys and disabled or deleted owners. Acting on a user (or their
keys) now needs at least the permissions that user holds, at every scope. And the last
owner of a tenant can no longer be removed or locked out: not by deleting or disabling
it, not by taking its owner role away (by hand or through an SSO mapping), not by
requiring SSO with no identity provider to log in with.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api


async def test_admin_cannot_act_on_an_owner_or_its_keys(api: Api, owner: httpx.AsyncClient) -> None:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    owner_key = ok(await owner.get("/v1/me"))["key_id"]
    _, admin_key = await user_with_role(owner, "adm", "admin")
    async with api.client(admin_key) as admin:
        attempts = [
            await admin.delete(f"/v1/keys/{owner_key}"),
            await admin.patch(f"/v1/users/{owner_id}", json={"disabled": True}),
            await admin.patch(f"/v1/users/{owner_id}", json={"display_name": "pwned"}),
            await admin.delete(f"/v1/users/{owner_id}"),
            await admin.post("/v1/bulk/users", json=[{"name": "owner", "disabled": True}]),
        ]
        for r in attempts[:4]:
            assert r.status_code == 403, f"{r.request.method} {r.request.url}: {r.text}"
            assert r.json()["error"]["type"] == "permission_denied"
        assert attempts[4].json()["failed"] == 1, attempts[4].text
        # the owner's assignment of the owner role: an admin cannot take it away either
        [owner_role] = [
            a
            for a in ok(await owner.get("/v1/role-assignments", params={"user_id": owner_id}))[
                "items"
            ]
            if a["role"] == "owner"
        ]
        r = await admin.delete(f"/v1/role-assignments/{owner_role['id']}")
        assert r.status_code == 403, r.text
        # an admin still manages the people it outranks or equals
        dev, _ = await user_with_role(owner, "dev", "developer")
        ok(await admin.patch(f"/v1/users/{dev}", json={"disabled": True}))
    me = ok(await owner.get("/v1/me"))
    assert me["user_id"] == owner_id and me["key_id"] == owner_key
    assert ok(await owner.get(f"/v1/users/{owner_id}"))["display_name"] != "pwned"


async def test_the_last_owner_cannot_remove_itself(api: Api, owner: httpx.AsyncClient) -> None:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    [owner_role] = [
        a
        for a in ok(await owner.get("/v1/role-assignments", params={"user_id": owner_id}))["items"]
        if a["role"] == "owner"
    ]
    r = await owner.delete(f"/v1/role-assignments/{owner_role['id']}")
    assert r.status_code == 409, r.text
    assert "last owner" in r.json()["error"]["message"]
    r = await owner.patch(f"/v1/users/{owner_id}", json={"disabled": True})
    assert r.status_code == 409, r.text
    r = await owner.post("/v1/bulk/users", json=[{"name": "owner", "disabled": True}])
    assert ok(r)["failed"] == 1, r.text
    # with a second owner, the first may step down
    second, second_key = await user_with_role(owner, "second-owner", "owner")
    ok(await owner.delete(f"/v1/role-assignments/{owner_role['id']}"), 204)
    async with api.client(second_key) as new_owner:
        [theirs] = [
            a
            for a in ok(await new_owner.get("/v1/role-assignments", params={"user_id": second}))[
                "items"
            ]
            if a["role"] == "owner"
        ]
        r = await new_owner.delete(f"/v1/role-assignments/{theirs['id']}")
        assert r.status_code == 409, r.text  # now the last one


async def test_require_sso_needs_an_identity_provider(api: Api, owner: httpx.AsyncClient) -> None:
    r = await owner.put("/v1/sso/policy", json={"require_sso": True})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "require_sso"
    assert ok(await owner.get("/v1/sso/policy"))["require_sso"] is False
    ok(await owner.get("/v1/me"))  # the owner's key still works


async def test_require_sso_keeps_its_last_identity_provider(
    api: Api, owner: httpx.AsyncClient
) -> None:
    idp = {
        "name": "corp",
        "issuer": "https://idp.example.com",
        "client_id": "musubi",
        "client_secret": "s3cret",
    }
    created = ok(await owner.post("/v1/sso/idps", json=idp), 201)
    _, svc = await _service_owner(owner)  # human keys are refused once SSO is required
    ok(await owner.put("/v1/sso/policy", json={"require_sso": True}))
    async with api.client(svc) as admin:
        r = await admin.delete(f"/v1/sso/idps/{created['id']}")
        assert r.status_code == 422, r.text
        r = await admin.patch(f"/v1/sso/idps/{created['id']}", json={"enabled": False})
        assert r.status_code == 422, r.text
        ok(await admin.put("/v1/sso/policy", json={"require_sso": False}))
        ok(await admin.delete(f"/v1/sso/idps/{created['id']}"), 204)


async def _service_owner(owner: httpx.AsyncClient) -> tuple[str, str]:
    user = ok(await owner.post("/v1/users", json={"name": "robot", "kind": "service"}), 201)
    body = {"user_id": user["id"], "role": "owner"}
    ok(await owner.post("/v1/role-assignments", json=body), 201)
    key = ok(await owner.post("/v1/keys", json={"user_id": user["id"]}), 201)
    return user["id"], key["token"]


async def test_two_owners_removing_each_other_at_once_leave_one(
    api: Api, owner: httpx.AsyncClient
) -> None:
    """Owner A disables B while B disables A: the tenant's row is locked for the count,
    so at most one of the two can pass."""
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    second, second_key = await user_with_role(owner, "second-owner", "owner")
    async with api.client(second_key) as other:
        answers = await asyncio.gather(
            owner.patch(f"/v1/users/{second}", json={"disabled": True}),
            other.patch(f"/v1/users/{owner_id}", json={"disabled": True}),
        )
        assert [r.status_code for r in answers].count(200) == 1, [r.text for r in answers]
        listed = None
        for client in (owner, other):  # whichever owner is still enabled
            r = await client.get("/v1/users")
            if r.status_code == 200:
                listed = {u["id"]: u["disabled"] for u in r.json()["items"]}
    assert listed is not None, "no owner can call the API any more"
    assert [listed[owner_id], listed[second]].count(False) == 1


async def test_the_owners_last_key_cannot_be_revoked(api: Api, owner: httpx.AsyncClient) -> None:
    """With no identity provider to log in with, revoking the owners' last working key
    would leave nobody able to manage the tenant."""
    my_key = ok(await owner.get("/v1/me"))["key_id"]
    r = await owner.delete(f"/v1/keys/{my_key}")
    assert r.status_code == 409 and "last working key" in r.json()["error"]["message"], r.text
    spare = ok(await owner.post("/v1/keys", json={"name": "spare"}), 201)
    ok(await owner.delete(f"/v1/keys/{my_key}"))  # another key remains: fine
    async with api.client(spare["token"]) as owner_again:
        assert ok(await owner_again.get("/v1/me"))["key_id"] == spare["key"]["id"]
