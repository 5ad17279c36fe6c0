from __future__ import annotations

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api


async def test_set_list_and_remove_a_policy(api: Api, owner: httpx.AsyncClient) -> None:
    project = ok(await owner.post("/v1/projects", json={"name": "p"}), 201)
    body = {
        "scope": "project",
        "scope_id": project["id"],
        "limits": {"tokens_per_day": 1000, "cost_per_month": 25.0},
    }
    policy = ok(await owner.put("/v1/quotas", json=body))
    assert policy["tokens_per_day"] == 1000 and policy["requests_per_minute"] is None
    again = ok(await owner.put("/v1/quotas", json={**body, "limits": {"tokens_per_day": 5}}))
    assert again["id"] == policy["id"] and again["cost_per_month"] is None  # replaced
    assert [p["id"] for p in ok(await owner.get("/v1/quotas"))["items"]] == [policy["id"]]
    bad = await owner.put("/v1/quotas", json={**body, "limits": {"tokens_per_year": 1}})
    assert bad.status_code == 422 and "tokens_per_year" in bad.text
    ok(await owner.delete(f"/v1/quotas/{policy['id']}"), 204)
    assert ok(await owner.get("/v1/quotas"))["items"] == []


async def test_only_quota_writers_set_quotas(api: Api, owner: httpx.AsyncClient) -> None:
    _, dev = await user_with_role(owner, "dev", "developer")
    _, billing = await user_with_role(owner, "bill", "billing")
    body = {"scope": "tenant", "limits": {"requests_per_minute": 10}}
    async with api.client(dev) as client:
        assert (await client.put("/v1/quotas", json=body)).status_code == 403
    async with api.client(billing) as client:
        ok(await client.put("/v1/quotas", json=body))
        ok(await client.get("/v1/usage"))
