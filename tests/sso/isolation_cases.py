"""Cross-tenant cases of the SSO and SCIM routes, used by tests/api/test_isolation.py.

Tenant A configures an IdP and provisions a person and a group through SCIM (A's owner
key holds ``scim:provision``); tenant B's valid key, which holds every permission in B,
SCIM included, must never see or change them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from tests.api.helpers import ok

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
IDP = {
    "name": "corp",
    "issuer": "https://idp.a.example",
    "client_id": "a-client",
    "client_secret": "a-secret-value",
}


SAML_ISSUER = "urn:a-tenant:saml-idp"


@functools.cache
def _cert(name: str) -> str:
    from tests.sso.saml_idp import self_signed

    return self_signed(name)[1].decode()


def _saml_idp(cert: str) -> dict[str, Any]:
    saml = {"sso_url": "https://idp.a.example/sso", "certificates": [cert]}
    return {"name": "corp-saml", "protocol": "saml", "issuer": SAML_ISSUER, "saml": saml}


async def _a_setup(w: Any) -> dict[str, str]:
    idp = ok(await w.a.post("/v1/sso/idps", json=IDP), 201)
    saml_idp = ok(await w.a.post("/v1/sso/idps", json=_saml_idp(_cert("a"))), 201)
    person = ok(await w.a.post("/scim/v2/Users", json={"userName": "a-person"}), 201)
    group = {"displayName": "a-group", "members": [{"value": person["id"]}]}
    group = ok(await w.a.post("/scim/v2/Groups", json=group), 201)
    ids = {"idp": idp["id"], "person": person["id"], "group": group["id"]}
    return ids | {"saml_idp": saml_idp["id"]}


async def _a_unchanged(w: Any, ids: dict[str, str]) -> None:
    idp = ok(await w.a.get(f"/v1/sso/idps/{ids['idp']}"))
    assert (idp["issuer"], idp["enabled"]) == (IDP["issuer"], True)
    saml_idp = ok(await w.a.get(f"/v1/sso/idps/{ids['saml_idp']}"))
    assert saml_idp["saml"]["certificates"] == [_cert("a")]  # B cannot plant its own key
    person = ok(await w.a.get(f"/scim/v2/Users/{ids['person']}"))
    assert (person["userName"], person["active"]) == ("a-person", True)
    group = ok(await w.a.get(f"/scim/v2/Groups/{ids['group']}"))
    assert group["displayName"] == "a-group"
    assert [m["value"] for m in group["members"]] == [ids["person"]]
    assert ok(await w.a.get("/v1/sso/policy"))["require_sso"] is False


Body = Callable[[Any, dict[str, str]], Awaitable[None]]


def _case(body: Body) -> Callable[[Any], Awaitable[None]]:
    async def case(w: Any) -> None:
        ids = await _a_setup(w)
        await body(w, ids)
        await _a_unchanged(w, ids)

    return case


def _not_found(method: str, path: str, json: Any = None) -> Callable[[Any], Awaitable[None]]:
    async def body(w: Any, ids: dict[str, str]) -> None:
        url = path.format(**ids)
        r = await w.b.request(method, url, json=json)
        assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text}"

    return _case(body)


def _lists_nothing_of_a(path: str, **params: str) -> Callable[[Any], Awaitable[None]]:
    async def body(w: Any, ids: dict[str, str]) -> None:
        r = await w.b.get(path, params=params)
        assert r.status_code == 200, r.text
        leaks = (*ids.values(), w.a_tenant, "a-person", "a-group", IDP["issuer"], SAML_ISSUER)
        for value in leaks:
            assert value not in r.text, f"GET {path} leaks {value}"

    return _case(body)


async def _b_patches_a_idps(w: Any, ids: dict[str, str]) -> None:
    for url, body in (
        (f"/v1/sso/idps/{ids['idp']}", {"enabled": False}),
        (f"/v1/sso/idps/{ids['saml_idp']}", {"saml": _saml_idp(_cert("b"))["saml"]}),
    ):
        r = await w.b.patch(url, json=body)
        assert r.status_code == 404, f"PATCH {url}: {r.status_code} {r.text}"


async def _b_creates_same_names(w: Any, ids: dict[str, str]) -> None:
    assert ok(await w.b.post("/v1/sso/idps", json=IDP), 201)["tenant_id"] == w.b_tenant


async def _b_provisions_same_user(w: Any, ids: dict[str, str]) -> None:
    mine = ok(await w.b.post("/scim/v2/Users", json={"userName": "a-person"}), 201)
    assert mine["id"] != ids["person"]


async def _b_group_with_a_member(w: Any, ids: dict[str, str]) -> None:
    body = {"displayName": "a-group", "members": [{"value": ids["person"]}]}
    r = await w.b.post("/scim/v2/Groups", json=body)
    assert r.status_code == 404, r.text


async def _b_policy(w: Any, ids: dict[str, str]) -> None:
    ok(await w.b.post("/v1/sso/idps", json=IDP), 201)  # requiring SSO needs an IdP of B's
    ok(await w.b.put("/v1/sso/policy", json={"require_sso": True}))
    assert ok(await w.a.get("/v1/me"))["tenant_id"] == w.a_tenant  # A's keys still work


async def _b_logout(w: Any, ids: dict[str, str]) -> None:
    assert ok(await w.b.post("/v1/sso/logout"))["logged_out"] is True


_DEACTIVATE = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
_ADD_MEMBER = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": []}]}

SSO_CASES: dict[tuple[str, str], Callable[[Any], Awaitable[None]]] = {
    ("GET", "/v1/sso/idps"): _lists_nothing_of_a("/v1/sso/idps"),
    ("POST", "/v1/sso/idps"): _case(_b_creates_same_names),
    ("GET", "/v1/sso/idps/{idp_id}"): _not_found("GET", "/v1/sso/idps/{idp}"),
    ("PATCH", "/v1/sso/idps/{idp_id}"): _case(_b_patches_a_idps),
    ("DELETE", "/v1/sso/idps/{idp_id}"): _not_found("DELETE", "/v1/sso/idps/{idp}"),
    ("POST", "/v1/sso/idps/{idp_id}/test-login"): _not_found(
        "POST", "/v1/sso/idps/{idp}/test-login"
    ),
    ("GET", "/v1/sso/policy"): _lists_nothing_of_a("/v1/sso/policy"),
    ("PUT", "/v1/sso/policy"): _case(_b_policy),
    ("GET", "/v1/sso/sessions"): _lists_nothing_of_a("/v1/sso/sessions"),
    ("DELETE", "/v1/sso/sessions/{session_id}"): _not_found(
        "DELETE", "/v1/sso/sessions/ses_0000000000000000"
    ),
    ("POST", "/v1/sso/logout"): _case(_b_logout),
    ("GET", "/scim/v2/Users"): _lists_nothing_of_a("/scim/v2/Users"),
    ("POST", "/scim/v2/Users"): _case(_b_provisions_same_user),
    ("GET", "/scim/v2/Users/{user_id}"): _not_found("GET", "/scim/v2/Users/{person}"),
    ("PUT", "/scim/v2/Users/{user_id}"): _not_found(
        "PUT", "/scim/v2/Users/{person}", {"userName": "stolen", "active": False}
    ),
    ("PATCH", "/scim/v2/Users/{user_id}"): _not_found(
        "PATCH", "/scim/v2/Users/{person}", _DEACTIVATE
    ),
    ("DELETE", "/scim/v2/Users/{user_id}"): _not_found("DELETE", "/scim/v2/Users/{person}"),
    ("GET", "/scim/v2/Groups"): _lists_nothing_of_a("/scim/v2/Groups"),
    ("POST", "/scim/v2/Groups"): _case(_b_group_with_a_member),
    ("GET", "/scim/v2/Groups/{group_id}"): _not_found("GET", "/scim/v2/Groups/{group}"),
    ("PATCH", "/scim/v2/Groups/{group_id}"): _not_found(
        "PATCH", "/scim/v2/Groups/{group}", _ADD_MEMBER
    ),
    ("DELETE", "/scim/v2/Groups/{group_id}"): _not_found("DELETE", "/scim/v2/Groups/{group}"),
}
