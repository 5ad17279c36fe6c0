"""Bad credentials, missing permissions, bad bodies: precise errors, each audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from musubi.audit.models import AuditEvent
from musubi.context import SYSTEM_TENANT, system_scope
from tests.api.helpers import ok, user_with_role
from tests.conftest import Api


async def _events(api: Api, action: str) -> list[AuditEvent]:
    with system_scope():
        async with api.state.db.read() as s:
            rows = await s.scalars(select(AuditEvent).where(AuditEvent.action == action))
            return list(rows.all())


def _strip(body: dict[str, object]) -> dict[str, object]:
    error = dict(body["error"])  # type: ignore[call-overload]
    error.pop("request_id")
    return error


async def test_every_bad_key_gets_the_same_401(api: Api, owner: httpx.AsyncClient) -> None:
    me = ok(await owner.get("/v1/me"))
    _, key = await user_with_role(owner, "dev", "developer")
    expired = ok(
        await owner.post(
            "/v1/keys",
            json={"expires_at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()},
        ),
        201,
    )
    revoked = ok(await owner.post("/v1/keys", json={"name": "to revoke"}), 201)
    ok(await owner.delete(f"/v1/keys/{revoked['key']['id']}"))
    prefix = key.split("_")[1]
    wrong_secret = f"msk_{prefix}_{'x' * 43}"
    unknown = "msk_00000000_" + "y" * 43
    import asyncio

    await asyncio.sleep(1.1)  # let the short-lived key expire
    bodies = []
    async with api.client() as anon:
        for token in [None, "garbage", unknown, wrong_secret, expired["token"], revoked["token"]]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = await anon.get("/v1/teams", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            bodies.append(_strip(r.json()))
    assert all(b == bodies[0] for b in bodies), bodies
    failed = await _events(api, "auth.failed")
    reasons = {(e.tenant_id, e.detail["reason"]) for e in failed}
    tenant = me["tenant_id"]
    assert (SYSTEM_TENANT, "no key sent") in reasons
    assert (SYSTEM_TENANT, "unknown key") in reasons
    assert {(tenant, "wrong secret"), (tenant, "expired key"), (tenant, "revoked key")} <= reasons


async def test_x_api_key_header_and_revocation_take_effect_at_once(
    api: Api, owner: httpx.AsyncClient
) -> None:
    created = ok(await owner.post("/v1/keys", json={"name": "ci"}), 201)
    async with api.client() as anon:
        headers = {"x-api-key": created["token"]}
        assert (await anon.get("/v1/me", headers=headers)).status_code == 200
        ok(await owner.delete(f"/v1/keys/{created['key']['id']}"))
        assert (await anon.get("/v1/me", headers=headers)).status_code == 401
    listed = ok(await owner.get("/v1/keys"))["items"]
    row = next(k for k in listed if k["id"] == created["key"]["id"])
    assert row["state"] == "revoked"
    assert "token" not in row and "secret_hash" not in row
    assert row["last_used_at"] is not None


async def test_missing_permission_is_403_and_audited(api: Api, owner: httpx.AsyncClient) -> None:
    _, viewer = await user_with_role(owner, "viewer1", "viewer")
    async with api.client(viewer) as client:
        assert (await client.get("/v1/teams")).status_code == 200
        r = await client.post("/v1/teams", json={"name": "nope"})
        assert r.status_code == 403
        assert r.json()["error"]["permission"] == "teams:write"
        r = await client.get("/v1/audit/events")
        assert r.status_code == 403
    denied = await _events(api, "access.denied")
    assert {e.detail["permission"] for e in denied} >= {"teams:write", "audit:read"}
    assert all(e.outcome == "denied" for e in denied)
    assert ok(await owner.get("/v1/teams"))["items"] == []  # nothing was created


async def test_malformed_body_is_422_naming_the_field(api: Api, owner: httpx.AsyncClient) -> None:
    r = await owner.post("/v1/teams", json={"name": ""})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "name"
    r = await owner.post("/v1/projects", json={"name": "p", "colour": "red"})
    assert r.status_code == 422
    assert any(p["field"] == "colour" for p in r.json()["error"]["problems"])
    r = await owner.post(
        "/v1/teams", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert len(await _events(api, "request.invalid_input")) == 3


async def test_oversized_body_is_413_before_anything_is_stored(
    api: Api, owner: httpx.AsyncClient
) -> None:
    big = {"name": "big", "description": "x" * (api.state.settings.max_body_bytes + 1)}
    r = await owner.post("/v1/teams", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(100):
            yield b"x" * 1024

    r = await owner.post(
        "/v1/teams", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert ok(await owner.get("/v1/teams"))["items"] == []
    events = await _events(api, "request.payload_too_large")
    me = ok(await owner.get("/v1/me"))
    assert len(events) == 2 and all(e.tenant_id == me["tenant_id"] for e in events)
