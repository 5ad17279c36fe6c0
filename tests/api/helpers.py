"""Helpers for API tests: make a second tenant, users with roles, keys."""

from __future__ import annotations

from typing import Any

import httpx


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


async def new_tenant(owner: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """Create a tenant through the platform API; returns (tenant id, its owner key)."""
    body = ok(await owner.post("/v1/tenants", json={"name": name}), 201)
    return body["tenant"]["id"], body["owner_key"]


async def user_with_role(
    client: httpx.AsyncClient,
    name: str,
    role: str | None,
    *,
    scope: str = "tenant",
    scope_id: str = "",
    project_id: str | None = None,
) -> tuple[str, str]:
    """A user holding ``role`` and a key for them; returns (user id, key token)."""
    user = ok(await client.post("/v1/users", json={"name": name}), 201)
    if role:
        ok(
            await client.post(
                "/v1/role-assignments",
                json={"user_id": user["id"], "role": role, "scope": scope, "scope_id": scope_id},
            ),
            201,
        )
    key = ok(
        await client.post("/v1/keys", json={"user_id": user["id"], "project_id": project_id}), 201
    )
    return user["id"], key["token"]
