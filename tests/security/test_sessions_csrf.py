"""Browser sessions and CSRF tried as an attacker would, against a real server, with real
sessions opened by a SAML login (tests/sso/test_saml_e2e.py's IdP on loopback).

Already covered elsewhere: the session cookie's HttpOnly and SameSite=Lax on a plain
login, and logout with the CSRF token (test_saml_e2e.py::test_login_creates_user_maps_
roles_and_opens_a_session). Here: Secure behind TLS, the CSRF token's absence, a foreign
or opaque ``Origin``, another session's CSRF token, session fixation, and that a logged-out
(or fixated) cookie is dead on the server, not only cleared in the browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape

import httpx

from tests.api.helpers import ok
from tests.sso import test_saml_e2e as e2e
from tests.sso.test_saml_e2e import _INPUT, Saml, browser

keys, idp_server, sso = e2e.keys, e2e.idp_server, e2e.sso  # the e2e file's fixtures


def _cookies(r: httpx.Response) -> dict[str, str]:
    """Set-Cookie lines by cookie name."""
    out = {}
    for line in r.headers.get_list("set-cookie"):
        out[line.split("=", 1)[0]] = line
    return out


@asynccontextmanager
async def _logged_in(sso: Saml, user: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
    sso.idp.user = user
    async with browser(sso) as b:
        r = await sso.login(b)
        assert r.status_code == 303, r.text
        yield b


async def test_cookie_flags_and_secure_behind_tls(sso: Saml) -> None:
    async with browser(sso) as b:
        start = _cookies(await b.get(sso.url("login"), params={"idp": "corp"}))
        # Plain HTTP: no SameSite (a Lax cookie would not come with the IdP's cross-site
        # POST) and no Secure (it would be dropped).
        flow = start["musubi_saml_flow"]
        assert "HttpOnly" in flow and "SameSite" not in flow and "Secure" not in flow, flow
        plain = _cookies(await sso.login(b))
    assert "HttpOnly" in plain["musubi_session"] and "SameSite=lax" in plain["musubi_session"]
    assert "Secure" not in plain["musubi_session"]  # http on loopback: a Secure cookie is lost
    assert "HttpOnly" not in plain["musubi_csrf"]  # the dashboard's JS must read it
    # Behind a TLS-terminating proxy (uvicorn trusts X-Forwarded-Proto from loopback only).
    tls = httpx.AsyncClient(
        base_url=sso.api.base_url, timeout=30, headers={"X-Forwarded-Proto": "https"}
    )
    async with tls:
        start = await tls.get(sso.url("login"), params={"idp": "corp"})
        binding = _cookies(start)["musubi_saml_flow"]  # the IdP posts cross-site: None
        assert "Secure" in binding and "SameSite=none" in binding and "HttpOnly" in binding
        page = await tls.get(start.headers["location"])
        form = {k: unescape(v) for k, v in _INPUT.findall(page.text)}
        # httpx keeps Secure cookies off plain HTTP: send the binding as a browser would.
        value = binding.split(";", 1)[0].split("=", 1)[1]
        tls.cookies.clear()
        r = await tls.post(
            sso.url("acs"), data=form, headers={"Cookie": f"musubi_saml_flow={value}"}
        )
        assert r.status_code == 303, r.text
        over_tls = _cookies(r)
    for name in ("musubi_session", "musubi_csrf"):
        assert "Secure" in over_tls[name] and "SameSite=lax" in over_tls[name], over_tls


async def test_state_change_without_the_csrf_token_or_from_another_origin_is_refused(
    sso: Saml,
) -> None:
    """Alice (tenant admin by her groups) is logged in; a cross-site page makes her browser
    send a key-minting POST with her cookie. Every variant is refused and nothing is made."""
    async with _logged_in(sso) as b:
        me = ok(await b.get("/v1/me"))
        token = b.cookies["musubi_csrf"]
        body = {"user_id": me["user_id"], "name": "stolen"}
        variants: list[dict[str, str]] = [
            {},  # a form post: no token at all
            {"Origin": "https://evil.example"},
            {"Origin": "https://evil.example", "X-CSRF-Token": token},  # token leaked
            {"Origin": "null", "X-CSRF-Token": token},  # sandboxed iframe / data: URL
            {"Origin": sso.api.base_url.rsplit(":", 1)[0] + ":1", "X-CSRF-Token": token},
            {"X-CSRF-Token": token + "x"},
            {"X-CSRF-Token": ""},
        ]
        for headers in variants:
            r = await b.post("/v1/keys", json=body, headers=headers)
            assert r.status_code == 403, (headers, r.text)
            assert "CSRF" in r.json()["error"]["message"]
            r = await b.post("/v1/keys", data=body, headers=headers)  # form-encoded too
            assert r.status_code == 403, (headers, r.text)
        keys_now = ok(await sso.owner.get("/v1/keys", params={"user_id": me["user_id"]}))
        assert [k for k in keys_now["items"] if k.get("name") == "stolen"] == []
        # The same call from the dashboard (same origin, its token) goes through.
        same = {"Origin": sso.api.base_url, "X-CSRF-Token": token}
        ok(await b.post("/v1/keys", json=body, headers=same), 201)


async def test_another_sessions_csrf_token_is_refused(sso: Saml) -> None:
    """Double submit bound to the session: the attacker's own (valid) CSRF token, from
    their own session, does not pass with the victim's cookie."""
    async with _logged_in(sso, "bob") as attacker, _logged_in(sso, "alice") as victim:
        theirs = attacker.cookies["musubi_csrf"]
        r = await victim.post("/v1/sso/logout", headers={"X-CSRF-Token": theirs})
        assert r.status_code == 403
        ok(await victim.get("/v1/me"))  # still logged in


async def test_session_fixation_a_planted_cookie_is_replaced_at_login(sso: Saml) -> None:
    """The attacker plants a session cookie in the victim's browser: a made-up value and
    the attacker's own real session. The victim's login issues a new token; the planted
    ones never become the victim's session."""
    async with _logged_in(sso, "bob") as attacker:
        bobs = attacker.cookies["musubi_session"]
        bob_id = ok(await attacker.get("/v1/me"))["user_id"]
    for planted in ("mss_attacker-chosen-value", bobs):
        async with browser(sso) as victim:
            victim.cookies.set("musubi_session", planted)
            sso.idp.user = "alice"
            r = await sso.login(victim)
            issued = r.cookies["musubi_session"]
            assert issued != planted
            alice = ok(await victim.get("/v1/me"))
            assert alice["user_id"] != bob_id
        async with browser(sso) as holder:
            holder.cookies.set("musubi_session", planted)
            r = await holder.get("/v1/me")
            if planted == bobs:
                assert ok(r)["user_id"] == bob_id  # still Bob's, never upgraded to Alice
            else:
                assert r.status_code == 401


async def test_logout_kills_the_session_on_the_server(sso: Saml) -> None:
    """A copy of the cookie taken before logout (another tab, a stolen copy) is dead."""
    async with _logged_in(sso) as b:
        stolen = b.cookies["musubi_session"]
        r = await b.post("/v1/sso/logout", headers={"X-CSRF-Token": b.cookies["musubi_csrf"]})
        ok(r)
        cleared = _cookies(r)
        assert 'musubi_session=""' in cleared["musubi_session"]
    async with browser(sso) as thief:
        thief.cookies.set("musubi_session", stolen)
        r = await thief.get("/v1/me")
        assert r.status_code == 401
        assert r.json()["error"]["type"]
