"""End-to-end OIDC logins against a real OpenID Provider (panva/oidc-provider) on loopback,
driven by an httpx "browser" that submits the provider's login and consent forms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from musubi.audit.models import AuditEvent
from musubi.context import system_scope
from tests.api.helpers import ok, user_with_role
from tests.conftest import Api
from tests.sso.browser import browser_login, oidc_provider

ACCOUNTS = {
    "alice": {
        "email": "alice@example.com",
        "name": "Alice Example",
        "preferred_username": "alice",
        "realm_access": {"roles": ["musubi-admins", "offline_access"]},
    },
    "bob": {"email": "bob@example.com", "preferred_username": "bob", "groups": []},
}
MAPPING = {
    "groups_claim": "realm_access.roles",
    "default_role": "viewer",
    "rules": [{"value": "musubi-admins", "role": "admin"}],
}


@dataclass
class Sso:
    api: Api
    owner: httpx.AsyncClient
    tenant_id: str
    idp: dict[str, Any]
    issuer: str

    @property
    def login_url(self) -> str:
        return f"{self.api.base_url}/v1/sso/{self.tenant_id}/oidc/login"

    @property
    def callback(self) -> str:
        return f"{self.api.base_url}/v1/sso/{self.tenant_id}/oidc/callback"

    async def login(self, browser: httpx.AsyncClient, who: str, **params: str) -> httpx.Response:
        query = "&".join(f"{k}={v}" for k, v in {"idp": "corp", **params}.items())
        return await browser_login(
            browser, f"{self.login_url}?{query}", login=who, stop_at=self.callback
        )


@pytest.fixture
async def sso(api: Api, owner: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[Sso]:
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    callback = f"{api.base_url}/v1/sso/{tenant_id}/oidc/callback"
    client = {"client_id": "musubi", "client_secret": "s3cret-s3cret", "redirect_uris": [callback]}
    async with oidc_provider([client], ACCOUNTS, tmp_path / "idp.log") as issuer:
        body = {
            "name": "corp",
            "issuer": issuer,
            "client_id": "musubi",
            "client_secret": "s3cret-s3cret",
            "scopes": ["email", "profile", "groups"],
            "mapping": MAPPING,
        }
        idp = ok(await owner.post("/v1/sso/idps", json=body), 201)
        yield Sso(api, owner, tenant_id, idp, issuer)


def browser(sso: Sso) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sso.api.base_url, timeout=30)


async def _events(api: Api, action: str) -> list[AuditEvent]:
    with system_scope():
        async with api.state.db.read() as s:
            query = select(AuditEvent).where(AuditEvent.action == action)
            return list((await s.scalars(query)).all())


async def test_login_creates_user_maps_roles_and_opens_a_session(sso: Sso) -> None:
    async with browser(sso) as b:
        r = await sso.login(b, "alice", return_to="/dashboard")
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dashboard"
        cookies = r.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("musubi_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
        assert "Secure" not in session_cookie  # plain http on loopback; Secure behind TLS
        me = ok(await b.get("/v1/me"))  # no key: the session cookie authenticates
        assert "users:write" in me["permissions"]  # admin, from realm_access.roles
        user = ok(await sso.owner.get(f"/v1/users/{me['user_id']}"))
        assert (user["name"], user["display_name"]) == ("alice", "Alice Example")
        roles = ok(await sso.owner.get("/v1/role-assignments", params={"user_id": user["id"]}))
        assert sorted(a["role"] for a in roles["items"]) == ["admin", "viewer"]

        # CSRF: a state-changing cookie call needs the double-submit token.
        r = await b.post("/v1/teams", json={"name": "t"})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
        csrf = b.cookies["musubi_csrf"]
        r = await b.post("/v1/teams", json={"name": "t"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        r = await b.post(
            "/v1/teams",
            json={"name": "t2"},
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )
        assert r.status_code == 403

        # Logging in again finds the same user (issuer + subject), no duplicate.
        r = await sso.login(b, "alice")
        assert ok(await b.get("/v1/me"))["user_id"] == me["user_id"]

        r = await b.post("/v1/sso/logout", headers={"X-CSRF-Token": b.cookies["musubi_csrf"]})
        assert r.status_code == 200, r.text
        assert (await b.get("/v1/me")).status_code == 401
    assert len(await _events(sso.api, "sso.login")) == 2


async def test_replayed_code_and_mismatched_state_are_refused(sso: Sso) -> None:
    async with browser(sso) as b:
        r = await sso.login(b, "bob")
        assert r.status_code == 303
        code = parse_qs(urlsplit(str(r.url)).query)["code"][0]
        # A new login in the same browser, answered with the old code: refused.
        r = await b.get(sso.login_url, params={"idp": "corp"})
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        r = await b.get(sso.callback, params={"code": code, "state": state})
        assert r.status_code == 401
        assert "already used" in r.json()["error"]["message"]
    async with browser(sso) as victim, browser(sso) as attacker:
        # The attacker starts a login and plants its callback in the victim's browser.
        r = await attacker.get(sso.login_url, params={"idp": "corp"})
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        await victim.get(sso.login_url, params={"idp": "corp"})  # victim has its own state
        r = await victim.get(sso.callback, params={"code": "x" * 20, "state": state})
        assert r.status_code == 401
        assert "state does not match" in r.json()["error"]["message"]
    reasons = [e.detail["reason"] for e in await _events(sso.api, "sso.login.rejected")]
    assert reasons == ["replay", "state"]


@pytest.mark.parametrize(
    "param, value",
    [
        ("return_to", "https://evil.example/"),
        ("return_to", "//evil.example/x"),
        ("return_to", "/\\evil.example"),
        ("return_to", "javascript:alert(1)"),
        ("redirect_uri", "https://evil.example/cb"),
    ],
)
async def test_open_redirects_are_refused(sso: Sso, param: str, value: str) -> None:
    async with browser(sso) as b:
        r = await b.get(sso.login_url, params={"idp": "corp", param: value})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == param
    assert [e.detail["reason"] for e in await _events(sso.api, "sso.login.rejected")] == [
        "open_redirect"
    ]


async def test_test_login_reports_claims_and_mapping_and_creates_nothing(sso: Sso) -> None:
    r = ok(await sso.owner.post(f"/v1/sso/idps/{sso.idp['id']}/test-login"))
    async with browser(sso) as b:
        r = await browser_login(b, r["authorization_url"], login="alice", stop_at=sso.callback)
    report = ok(r)
    assert report["test_only"] is True
    assert report["claims"]["realm_access"]["roles"] == ["musubi-admins", "offline_access"]
    assert report["mapping"]["grants"] == [
        {"role": "viewer", "scope": "tenant", "scope_id": ""},
        {"role": "admin", "scope": "tenant", "scope_id": ""},
    ]
    assert report["user_id"] is None
    users = ok(await sso.owner.get("/v1/users"))["items"]
    assert "alice" not in [u["name"] for u in users]


async def test_scim_deprovisioning_cuts_session_and_key_at_once(sso: Sso) -> None:
    _, scim_key = await user_with_role(sso.owner, "okta-scim", "provisioner")
    async with browser(sso) as b, sso.api.client(scim_key) as scim:
        r = await sso.login(b, "alice")
        me = ok(await b.get("/v1/me"))
        key = ok(await sso.owner.post("/v1/keys", json={"user_id": me["user_id"]}), 201)
        async with sso.api.client(key["token"]) as alice_key:
            ok(await alice_key.get("/v1/me"))  # warm the auth cache for both
            ok(await b.get("/v1/me"))
            found = ok(await scim.get("/scim/v2/Users", params={"filter": 'userName eq "alice"'}))
            assert found["totalResults"] == 1
            patch = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            }
            ok(await scim.patch(f"/scim/v2/Users/{me['user_id']}", json=patch))
            assert (await alice_key.get("/v1/me")).status_code == 401
            assert (await b.get("/v1/me")).status_code == 401
        # A deprovisioned user cannot log in again either.
        r = await sso.login(b, "alice")
        assert r.status_code == 401
        assert "disabled or deprovisioned" in r.json()["error"]["message"]


async def test_require_sso_disables_human_keys_but_not_service_accounts(sso: Sso) -> None:
    _, human_key = await user_with_role(sso.owner, "carol", "viewer")
    svc = ok(await sso.owner.post("/v1/users", json={"name": "ci-bot", "kind": "service"}), 201)
    ok(
        await sso.owner.post("/v1/role-assignments", json={"user_id": svc["id"], "role": "viewer"}),
        201,
    )
    svc_key = ok(await sso.owner.post("/v1/keys", json={"user_id": svc["id"]}), 201)["token"]
    # The root owner is a human too: make an admin service account to set the policy.
    admin = ok(await sso.owner.post("/v1/users", json={"name": "ops", "kind": "service"}), 201)
    ok(
        await sso.owner.post(
            "/v1/role-assignments", json={"user_id": admin["id"], "role": "owner"}
        ),
        201,
    )
    admin_key = ok(await sso.owner.post("/v1/keys", json={"user_id": admin["id"]}), 201)["token"]
    async with sso.api.client(admin_key) as ops:
        ok(await ops.put("/v1/sso/policy", json={"require_sso": True}))
    async with sso.api.client(human_key) as human, sso.api.client(svc_key) as bot:
        assert (await human.get("/v1/me")).status_code == 401
        ok(await bot.get("/v1/me"))
    assert "SSO required for human users" in [
        e.detail["reason"] for e in await _events(sso.api, "auth.failed")
    ]
    async with browser(sso) as b:  # people log in through the IdP instead
        assert (await sso.login(b, "bob")).status_code == 303
        ok(await b.get("/v1/me"))
