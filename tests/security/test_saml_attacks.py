"""SAML assertion attacks tried against a real server and a real SAML IdP on loopback.

tests/sso/test_saml_e2e.py already covers: an unsigned assertion, a tampered one, the basic
signature wrapping (an unsigned assertion before the signed one), another audience, an
expired assertion, SHA-1, a foreign ``InResponseTo`` and a sequential replay. This file
adds what an attacker tries next: the other XSW placements, comment injection in the
NameID, a concurrent replay, assertions signed by keys or IdPs the flow did not ask, a
signed response around an unsigned assertion, and an ``InResponseTo`` rewritten to the
attacker's own pending login.
"""

from __future__ import annotations

import asyncio
import base64
import re
import zlib
from collections.abc import Callable
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.helpers import ok
from tests.conftest import _pg_param
from tests.security.saml_xml import assertion_span, prefix_of, without_signature
from tests.sso import test_saml_e2e as e2e
from tests.sso.saml_idp import SamlIdp, key_pair
from tests.sso.test_saml_e2e import _INPUT, Saml, _rejections, browser

keys, idp_server, sso = e2e.keys, e2e.idp_server, e2e.sso  # the e2e file's fixtures


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The checks are in code, not SQL: SQLite, except the races (both databases)."""
    return str(request.param)


def _evil(signed: str, *, same_id: bool = False) -> str:
    """An unsigned copy of the signed assertion naming another subject."""
    evil = without_signature(signed).replace("alice-pid", "root-pid")
    return evil if same_id else evil.replace(' ID="', ' ID="evil', 1)


def _xsw_extensions(xml: str) -> str:
    """XSW: the signed assertion moved into samlp:Extensions, an evil one in its place."""
    start, end = assertion_span(xml)
    signed = xml[start:end]
    p = prefix_of(xml, "Response")
    xml = xml[:start] + _evil(signed) + xml[end:]
    head = re.search(r"<(\w+:)?Response\b[^>]*>", xml)
    assert head is not None
    return xml[: head.end()] + f"<{p}Extensions>{signed}</{p}Extensions>" + xml[head.end() :]


def _xsw_nested(xml: str) -> str:
    """XSW: the signed assertion nested inside the evil one (in its Advice)."""
    start, end = assertion_span(xml)
    signed = xml[start:end]
    evil = _evil(signed)
    p = prefix_of(signed, "Assertion")
    close = evil.rindex(f"</{p}Assertion>")
    evil = evil[:close] + f"<{p}Advice>{signed}</{p}Advice>" + evil[close:]
    return xml[:start] + evil + xml[end:]


def _xsw_after(xml: str) -> str:
    """XSW: an evil assertion after the signed one (parsers that take the last one)."""
    start, end = assertion_span(xml)
    return xml[:end] + _evil(xml[start:end]) + xml[end:]


def _xsw_same_id(xml: str) -> str:
    """XSW: the evil assertion carries the signed one's ID (ID-based reference lookup)."""
    start, end = assertion_span(xml)
    return xml[:start] + _evil(xml[start:end], same_id=True) + xml[start:]


def _signature_moved(xml: str) -> str:
    """One assertion only: the evil one, carrying the original signature (another ID)."""
    start, end = assertion_span(xml)
    signed = xml[start:end]
    sig = re.search(r"<(\w+:)?Signature\b.*?</\1Signature>", signed, flags=re.S)
    assert sig is not None
    evil = _evil(signed)
    issuer_end = re.search(r"</(\w+:)?Issuer>", evil)
    assert issuer_end is not None
    evil = evil[: issuer_end.end()] + sig.group(0) + evil[issuer_end.end() :]
    return xml[:start] + evil + xml[end:]


def _signature_kept_same_id(xml: str) -> str:
    """One assertion only, same ID, original signature, another subject: the digest fails."""
    start, end = assertion_span(xml)
    return xml[:start] + xml[start:end].replace("alice-pid", "root-pid") + xml[end:]


XSW: dict[str, tuple[Callable[[str], str], str, str]] = {
    "extensions": (_xsw_extensions, "wrapping", "exactly one assertion"),
    "nested": (_xsw_nested, "wrapping", "exactly one assertion"),
    "after": (_xsw_after, "wrapping", "exactly one assertion"),
    "same_id": (_xsw_same_id, "wrapping", "exactly one assertion"),
    "signature_moved": (_signature_moved, "wrapping", "does not cover"),
    "same_id_rewritten": (_signature_kept_same_id, "signature", "invalid signature"),
}


@pytest.mark.parametrize("variant", list(XSW))
async def test_signature_wrapping_variants_are_refused(sso: Saml, variant: str) -> None:
    transform, reason, message = XSW[variant]
    sso.idp.transform = transform
    async with browser(sso) as b:
        r = await sso.login(b)
        assert r.status_code == 401, r.text
        assert message in r.json()["error"]["message"]
        assert "musubi_session" not in b.cookies
    assert await _rejections(sso.api) == [reason]


async def test_comment_in_name_id_does_not_truncate_the_subject(sso: Saml) -> None:
    """``alice<!---->-pid`` still verifies (C14N drops comments); a parser that read only
    the first text node would log in subject ``alice``. The subject must stay whole."""
    sso.idp.transform = lambda xml: xml.replace(">alice-pid<", ">alice<!---->-pid<", 1)
    started = ok(await sso.owner.post(f"/v1/sso/idps/{sso.config['id']}/test-login"))
    async with browser(sso) as b:
        page = await b.get(started["authorization_url"])
        form = {k: unescape(v) for k, v in _INPUT.findall(page.text)}
        report = ok(await b.post(sso.url("acs"), data=form))
    assert "<!---->" in sso.idp.last_xml
    assert report["mapping"]["subject"] == "alice-pid"


@pytest.mark.parametrize("backend", ["sqlite", _pg_param()], indirect=True)
async def test_concurrent_replay_logs_in_once(sso: Saml) -> None:
    """The same captured response posted many times at once: one session, the rest refused."""
    async with browser(sso) as b:
        form = await sso.to_acs(b)
        cookies = dict(b.cookies)  # the strongest attacker: the browser binding stolen too
    clients = [browser(sso) for _ in range(6)]
    for c in clients:
        c.cookies.update(cookies)
    try:
        answers = await asyncio.gather(*(c.post(sso.url("acs"), data=form) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    codes = sorted(r.status_code for r in answers)
    assert codes == [303, 401, 401, 401, 401, 401], [r.text for r in answers]


async def test_assertion_signed_by_an_unknown_key_is_refused(sso: Saml, tmp_path: Path) -> None:
    """An attacker's own key, issuer set to the trusted IdP's entity id, the attacker's
    certificate in the signature's KeyInfo (key confusion: only configured keys count)."""
    attacker = key_pair(tmp_path, "attacker")
    sso.idp.keys = [*sso.idp.keys, attacker]
    sso.idp.key_index = 2
    async with browser(sso) as b:
        r = await sso.login(b)
        assert r.status_code == 401 and "signature" in r.json()["error"]["message"]
        assert "musubi_session" not in b.cookies
    body = "".join(x for x in attacker.cert_pem.splitlines() if "-----" not in x)
    assert body[:64] in sso.idp.last_xml  # the attacker's certificate was in KeyInfo
    assert await _rejections(sso.api) == ["signature"]


def _request_of(location: str) -> tuple[str, str, str]:
    """(SAMLRequest, RelayState, AuthnRequest ID) of an HTTP-Redirect URL."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15).decode()
    found = re.search(r'\bID="([^"]+)"', xml)
    assert found is not None, xml
    return query["SAMLRequest"], query.get("RelayState", ""), found.group(1)


async def test_another_idp_of_the_tenant_cannot_answer_this_idps_login(
    sso: Saml, tmp_path: Path
) -> None:
    """A second IdP of the same tenant (its own key, validly signed) answers a login that
    was started with the first: refused, the flow is bound to the first IdP."""
    other = SamlIdp("http://127.0.0.1:9/other", [key_pair(tmp_path, "other")], "", {})
    other.sp_metadata, other.users = sso.idp.sp_metadata, sso.idp.users
    body = {
        "name": "other",
        "protocol": "saml",
        "issuer": other.entity_id,
        "saml": {"sso_url": other.sso_url, "certificates": [other.keys[0].cert_pem]},
    }
    ok(await sso.owner.post("/v1/sso/idps", json=body), 201)
    async with browser(sso) as b:
        r = await b.get(sso.url("login"), params={"idp": "other"})
        request, _, _ = _request_of(r.headers["location"])
        r = await b.get(sso.url("login"), params={"idp": "corp"})  # this browser's login
        _, relay, corp_request = _request_of(r.headers["location"])
        other.in_response_to = corp_request  # B signs an answer to A's request
        html = other.respond(request, relay)
        form = {k: unescape(v) for k, v in _INPUT.findall(html)}
        r = await b.post(sso.url("acs"), data=form)
        assert r.status_code == 401, r.text
        assert "musubi_session" not in b.cookies


async def test_signed_response_around_an_unsigned_assertion_is_refused(sso: Saml) -> None:
    """The trusted key signs the Response but not the assertion: the SP wants the
    assertion itself signed (a signed envelope is what XSW attacks move around)."""
    sso.idp.sign, sso.idp.sign_response = False, True
    async with browser(sso) as b:
        r = await sso.login(b)
        assert r.status_code == 401 and "not signed" in r.json()["error"]["message"]
    assert await _rejections(sso.api) == ["unsigned"]


async def test_in_response_to_rewritten_to_the_attackers_flow_is_refused(sso: Saml) -> None:
    """A captured response for the victim's login, its (unsigned) Response InResponseTo
    rewritten to a login the attacker started: the signed SubjectConfirmationData still
    names the victim's request, so it is refused; and a response with no InResponseTo
    (IdP-initiated) is refused too."""
    victim = browser(sso)
    form = await sso.to_acs(victim)
    async with browser(sso) as attacker:
        r = await attacker.get(sso.url("login"), params={"idp": "corp"})
        _, _, attackers_id = _request_of(r.headers["location"])
        xml = base64.b64decode(form["SAMLResponse"]).decode()
        head = re.search(r"<(\w+:)?Response\b[^>]*>", xml)
        assert head is not None
        rewritten = re.sub(r'InResponseTo="[^"]+"', f'InResponseTo="{attackers_id}"', head[0])
        assert rewritten != head[0]
        forged = xml[: head.start()] + rewritten + xml[head.end() :]
        r = await attacker.post(
            sso.url("acs"),
            data={**form, "SAMLResponse": base64.b64encode(forged.encode()).decode()},
        )
        assert r.status_code == 401 and "no request of ours" in r.json()["error"]["message"]
        assert "musubi_session" not in attacker.cookies
        bare = re.sub(r' InResponseTo="[^"]+"', "", head[0])
        unsolicited = xml[: head.start()] + bare + xml[head.end() :]
        r = await attacker.post(
            sso.url("acs"),
            data={**form, "SAMLResponse": base64.b64encode(unsolicited.encode()).decode()},
        )
        assert r.status_code == 401 and "unsolicited" in r.json()["error"]["message"]
    assert await _rejections(sso.api) == ["in_response_to", "in_response_to"]
    # The victim's own login is still there and still works.
    try:
        assert (await victim.post(sso.url("acs"), data=form)).status_code == 303
    finally:
        await victim.aclose()


async def test_login_csrf_another_browsers_response_does_not_log_the_victim_in(
    sso: Saml,
) -> None:
    """Login CSRF (session swapping): the attacker starts a login in their own browser,
    signs in at the IdP as themselves, and has a page in the victim's browser auto-post
    the resulting form to the ACS. The victim must not end up in the attacker's account
    (where what they upload or type would be the attacker's to read): the login is bound
    to the browser that started it, as the OIDC login is by its state cookie."""
    sso.idp.user = "bob"
    async with browser(sso) as attacker:
        form = await sso.to_acs(attacker)
        async with browser(sso) as victim:
            r = await victim.post(sso.url("acs"), data=form)
            assert r.status_code == 401, r.text
            assert "started in this browser" in r.json()["error"]["message"]
            assert "musubi_session" not in victim.cookies
        # The refusal does not burn the flow: the browser that started it still logs in.
        assert (await attacker.post(sso.url("acs"), data=form)).status_code == 303
    assert await _rejections(sso.api) == ["browser"]


ENTITY_ATTACKS = {
    "xxe": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>',
    "billion_laughs": '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + ']><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&i;'
    "</samlp:Response>",
}


async def test_xml_entities_in_the_response_are_refused_before_parsing(sso: Saml) -> None:
    """An anonymous post of a response with an external entity (file read, SSRF) or nested
    entities (memory): refused as malformed, quickly, never a 500, nothing read."""
    async with browser(sso) as b:
        for name, xml in ENTITY_ATTACKS.items():
            encoded = base64.b64encode(xml.encode()).decode()
            r = await b.post(sso.url("acs"), data={"SAMLResponse": encoded})
            assert r.status_code == 401, (name, r.text)
            message = r.json()["error"]["message"]
            assert "not SAML XML" in message and "root:" not in message, message
    assert await _rejections(sso.api) == ["malformed", "malformed"]
