"""End-to-end SAML logins against a real SAML IdP (pysaml2's IdP side) on loopback, and
the attacks a SAML SP must refuse. The "browser" is httpx: SP login redirect -> IdP ->
auto-post form -> assertion consumer -> session cookie on /v1/me."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1
from sqlalchemy import select

from musubi.audit.models import AuditEvent
from musubi.context import system_scope
from tests.api.helpers import new_tenant, ok
from tests.conftest import Api
from tests.sso.saml_idp import KeyPair, SamlIdp, key_pair, saml_idp

USERS = {
    "alice": {
        "uid": ["alice"],
        "email": ["alice@example.com"],
        "displayName": ["Alice Example"],
        "groups": ["musubi-admins", "staff"],
    },
    "bob": {"uid": ["bob"], "email": ["bob@example.com"], "groups": []},
}
MAPPING = {
    "groups_claim": "groups",
    "username_claim": "uid",
    "default_role": "viewer",
    "rules": [{"value": "musubi-admins", "role": "admin"}],
}
_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"/>')


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[KeyPair]:
    directory = tmp_path_factory.mktemp("saml-keys")
    return [key_pair(directory, "old"), key_pair(directory, "new")]


@pytest.fixture(scope="module")
def idp_server(keys: list[KeyPair]) -> Iterator[Callable[[str], SamlIdp]]:
    with saml_idp(keys, USERS) as configure:
        yield configure


@dataclass
class Saml:
    api: Api
    owner: httpx.AsyncClient
    tenant_id: str
    idp: SamlIdp
    config: dict[str, Any]

    def url(self, what: str) -> str:
        return f"{self.api.base_url}/v1/sso/{self.tenant_id}/saml/{what}"

    async def to_acs(self, b: httpx.AsyncClient, **params: str) -> dict[str, str]:
        """SP login -> IdP; the form fields the IdP's page would auto-post to the ACS."""
        r = await b.get(self.url("login"), params={"idp": "corp", **params})
        assert r.status_code == 302, r.text
        r = await b.get(r.headers["location"])
        assert r.status_code == 200, (r.text, self.idp.errors)
        return {k: unescape(v) for k, v in _INPUT.findall(r.text)}

    async def login(self, b: httpx.AsyncClient, **params: str) -> httpx.Response:
        return await b.post(self.url("acs"), data=await self.to_acs(b, **params))


@pytest.fixture
async def sso(
    api: Api, owner: httpx.AsyncClient, idp_server: Callable[[str], SamlIdp], keys: list[KeyPair]
) -> AsyncIterator[Saml]:
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    metadata = await owner.get(f"/v1/sso/{tenant_id}/saml/metadata")
    assert metadata.status_code == 200 and "AssertionConsumerService" in metadata.text
    idp = idp_server(metadata.text)
    body = {
        "name": "corp",
        "protocol": "saml",
        "issuer": idp.entity_id,
        "saml": {"sso_url": idp.sso_url, "certificates": [k.cert_pem for k in keys]},
        "mapping": MAPPING,
    }
    config = ok(await owner.post("/v1/sso/idps", json=body), 201)
    yield Saml(api, owner, tenant_id, idp, config)


def browser(sso: Saml) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sso.api.base_url, timeout=30)


async def _rejections(api: Api) -> list[str]:
    with system_scope():
        async with api.state.db.read() as s:
            query = select(AuditEvent).where(AuditEvent.action == "sso.login.rejected")
            return [e.detail["reason"] for e in (await s.scalars(query)).all()]


async def test_login_creates_user_maps_roles_and_opens_a_session(sso: Saml) -> None:
    async with browser(sso) as b:
        r = await sso.login(b, return_to="/dashboard")
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dashboard"
        cookie = next(c for c in r.headers.get_list("set-cookie") if "musubi_session=" in c)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        me = ok(await b.get("/v1/me"))
        assert "users:write" in me["permissions"]  # admin, from the groups attribute
        user = ok(await sso.owner.get(f"/v1/users/{me['user_id']}"))
        assert (user["name"], user["display_name"]) == ("alice", "alice")
        roles = ok(await sso.owner.get("/v1/role-assignments", params={"user_id": user["id"]}))
        assert sorted(a["role"] for a in roles["items"]) == ["admin", "viewer"]
        # Again: the same user (issuer + NameID), not a second one.
        assert (await sso.login(b)).status_code == 303
        assert ok(await b.get("/v1/me"))["user_id"] == me["user_id"]
        csrf = {"X-CSRF-Token": b.cookies["musubi_csrf"]}
        ok(await b.post("/v1/sso/logout", headers=csrf))
        assert (await b.get("/v1/me")).status_code == 401


async def test_either_of_two_certificates_is_accepted(sso: Saml) -> None:
    for index in (0, 1):
        sso.idp.key_index = index
        async with browser(sso) as b:
            assert (await sso.login(b)).status_code == 303
            ok(await b.get("/v1/me"))
    # After the rollover the old certificate is removed: its signatures stop counting.
    new = {"sso_url": sso.idp.sso_url, "certificates": [sso.idp.keys[1].cert_pem]}
    ok(await sso.owner.patch(f"/v1/sso/idps/{sso.config['id']}", json={"saml": new}))
    sso.idp.key_index = 0
    async with browser(sso) as b:
        r = await sso.login(b)
    assert r.status_code == 401 and "signature" in r.json()["error"]["message"]


def _tamper(xml: str) -> str:
    return xml.replace(">alice<", ">admin<", 1)


def _wrap(xml: str) -> str:
    """XSW: a second, unsigned assertion (another user) before the signed one."""
    found = re.search(r"<(\w+:)?Assertion\b.*?</\1Assertion>", xml, flags=re.S)
    assert found is not None, xml
    start, signed = found.start(), found.group(0)
    evil = re.sub(r"<(\w+:)?Signature\b.*?</\1Signature>", "", signed, flags=re.S)
    evil = evil.replace("alice-pid", "root-pid").replace(' ID="', ' ID="evil', 1)
    return xml[:start] + evil + xml[start:]


ATTACKS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unsigned": ({"sign": False}, "unsigned", "not signed"),
    "tampered": ({"transform": _tamper}, "signature", "invalid signature"),
    "wrapping": ({"transform": _wrap}, "wrapping", "exactly one assertion"),
    "audience": ({"audience": "https://other-sp.example/metadata"}, "audience", "Audience"),
    "expired": ({"lifetime_minutes": -10}, "expired", "expired"),
    "sha1": ({"sign_alg": SIG_RSA_SHA1, "digest_alg": DIGEST_SHA1}, "weak_signature", "SHA256"),
    "in_response_to": ({"in_response_to": "id-not-ours"}, "in_response_to", "InResponseTo"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attacks_are_refused_and_audited(sso: Saml, attack: str) -> None:
    knobs, reason, message = ATTACKS[attack]
    for name, value in knobs.items():
        setattr(sso.idp, name, value)
    async with browser(sso) as b:
        r = await sso.login(b)
        assert r.status_code == 401, r.text
        assert message in r.json()["error"]["message"]
        assert "musubi_session" not in b.cookies
    assert await _rejections(sso.api) == [reason]


async def test_replayed_assertion_is_refused(sso: Saml) -> None:
    async with browser(sso) as b:
        form = await sso.to_acs(b)
        assert (await b.post(sso.url("acs"), data=form)).status_code == 303
    async with browser(sso) as attacker:
        r = await attacker.post(sso.url("acs"), data=form)
        assert r.status_code == 401
        assert "already used" in r.json()["error"]["message"]
    assert await _rejections(sso.api) == ["replay"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil"])
async def test_open_redirects_in_relay_state_are_refused(sso: Saml, target: str) -> None:
    async with browser(sso) as b:
        r = await b.get(sso.url("login"), params={"idp": "corp", "return_to": target})
        assert r.status_code == 422
        form = await sso.to_acs(b)
        r = await b.post(sso.url("acs"), data={**form, "RelayState": target})
        assert r.status_code == 422 and r.json()["error"]["field"] == "RelayState"
        assert "musubi_session" not in b.cookies
    assert await _rejections(sso.api) == ["open_redirect", "open_redirect"]


async def test_another_tenants_acs_refuses_the_assertion(sso: Saml) -> None:
    other, other_key = await new_tenant(sso.owner, "other")
    # the other tenant trusts the same IdP (without one, its ACS is a 404 like an unknown
    # tenant's): the assertion, made for this tenant's SP, is still refused there
    same_idp = {k: sso.config[k] for k in ("name", "protocol", "issuer", "saml", "mapping")}
    async with sso.api.client(other_key) as other_owner:
        ok(await other_owner.post("/v1/sso/idps", json=same_idp), 201)
    async with browser(sso) as b:
        form = await sso.to_acs(b)
        r = await b.post(f"/v1/sso/{other}/saml/acs", data=form)
        assert r.status_code == 401, r.text
        # The flow is still there for its own tenant: the real login goes through.
        assert (await b.post(sso.url("acs"), data=form)).status_code == 303


async def test_test_login_reports_attributes_and_creates_nothing(sso: Saml) -> None:
    started = ok(await sso.owner.post(f"/v1/sso/idps/{sso.config['id']}/test-login"))
    async with browser(sso) as b:
        r = await b.get(started["authorization_url"])
        form = {k: unescape(v) for k, v in _INPUT.findall(r.text)}
        report = ok(await b.post(sso.url("acs"), data=form))
    assert report["test_only"] is True and report["user_id"] is None
    assert report["claims"]["groups"] == ["musubi-admins", "staff"]
    assert report["mapping"]["subject"] == "alice-pid"
    users = ok(await sso.owner.get("/v1/users"))["items"]
    assert "alice" not in [u["name"] for u in users]


async def test_bad_saml_settings_are_refused(owner: httpx.AsyncClient, tmp_path: Path) -> None:
    body = {
        "name": "x",
        "protocol": "saml",
        "issuer": "urn:idp",
        "saml": {"sso_url": "https://idp.example/sso", "certificates": ["not a cert"]},
    }
    r = await owner.post("/v1/sso/idps", json=body)
    assert r.status_code == 422 and "PEM" in r.text
    pem = key_pair(tmp_path, "k").cert_pem
    body["saml"] = {"sso_url": "http://evil.example/sso", "certificates": [pem, pem, pem]}
    assert (await owner.post("/v1/sso/idps", json=body)).status_code == 422
    del body["saml"]
    r = await owner.post("/v1/sso/idps", json=body)
    assert r.status_code == 422 and "saml" in r.text
