"""SCIM 2.0 users and groups over HTTP: filters, PATCH, ListResponse, error bodies."""

from __future__ import annotations

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


async def test_users_and_groups_lifecycle(api: Api, owner: httpx.AsyncClient) -> None:
    bot = ok(await owner.post("/v1/users", json={"name": "scim-bot", "kind": "service"}), 201)
    grant = {"user_id": bot["id"], "role": "provisioner"}
    ok(await owner.post("/v1/role-assignments", json=grant), 201)
    token = ok(await owner.post("/v1/keys", json={"user_id": bot["id"]}), 201)["token"]
    async with api.client(token) as scim:
        bob = ok(
            await scim.post("/scim/v2/Users", json={"userName": "bob", "displayName": "B"}), 201
        )
        assert bob["active"] is True and bob["meta"]["resourceType"] == "User"
        r = await scim.post("/scim/v2/Users", json={"userName": "bob"})
        assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"
        assert r.json()["schemas"] == [ERROR]
        page = ok(await scim.get("/scim/v2/Users", params={"filter": 'userName eq "bob"'}))
        assert page["totalResults"] == 1 and page["Resources"][0]["id"] == bob["id"]
        # Service accounts (the SCIM bot itself) are never visible to SCIM.
        hidden = await scim.get("/scim/v2/Users", params={"filter": 'userName eq "scim-bot"'})
        assert ok(hidden)["totalResults"] == 0
        r = await scim.get("/scim/v2/Users", params={"filter": 'userName co "b"'})
        assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"

        group = ok(await scim.post("/scim/v2/Groups", json={"displayName": "devs"}), 201)
        add = {
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": bob["id"]}]}],
        }
        group = ok(await scim.patch(f"/scim/v2/Groups/{group['id']}", json=add))
        assert [m["value"] for m in group["members"]] == [bob["id"]]
        remove = {
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}],
        }
        group = ok(await scim.patch(f"/scim/v2/Groups/{group['id']}", json=remove))
        assert group["members"] == []
        r = await scim.patch(f"/scim/v2/Groups/{group['id']}", json={"Operations": []})
        assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"

        r = await scim.delete(f"/scim/v2/Users/{bob['id']}")
        assert r.status_code == 204
        r = await scim.get(f"/scim/v2/Users/{bob['id']}")
        assert r.status_code == 404 and r.json()["schemas"] == [ERROR]
    _, viewer = await user_with_role(owner, "v", "viewer")  # no scim:provision
    async with api.client(viewer) as v:
        assert (await v.get("/scim/v2/Users")).status_code == 403
