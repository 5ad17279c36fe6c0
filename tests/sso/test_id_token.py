"""ID-token validation against the attack list, with keys served by an in-tree fake IdP
(discovery + JWKS over a real uvicorn server on loopback)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from musubi.egress import EgressRules
from musubi.sso.errors import LoginRejected
from musubi.sso.oidc import OidcClient
from tests.conftest import LOOPBACK_FAKES, _free_port

CLIENT = "musubi-client"
LOOPBACK = EgressRules.parse(LOOPBACK_FAKES).everyone  # the fake IdP's address
NONCE = "n-0123456789abcdef"


@dataclass
class FakeIdp:
    issuer: str
    keys: list[RSAKey] = field(default_factory=list)
    jwks_hits: int = 0

    def sign(
        self, key: RSAKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.issuer, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 300}
        body["nonce"] = NONCE
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(header or {"alg": "RS256", "kid": key.kid}, body, key)


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    port = _free_port()
    fake = FakeIdp(
        f"http://127.0.0.1:{port}", [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
    )

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": fake.issuer,
                "authorization_endpoint": f"{fake.issuer}/auth",
                "token_endpoint": f"{fake.issuer}/token",
                "jwks_uri": f"{fake.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            }
        )

    async def jwks(request: Request) -> JSONResponse:
        fake.jwks_hits += 1
        return JSONResponse({"keys": [k.as_dict(private=False) for k in fake.keys]})

    app = Starlette(
        routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task


def client(idp: FakeIdp, **kwargs: Any) -> OidcClient:
    return OidcClient(
        idp.issuer, CLIENT, "secret", jwks_refresh_floor=0.0, egress=LOOPBACK, **kwargs
    )


async def rejected(idp: FakeIdp, token: str, reason: str, **kwargs: Any) -> str:
    with pytest.raises(LoginRejected) as info:
        await client(idp, **kwargs).validate_id_token(token, nonce=NONCE)
    assert info.value.reason == reason, info.value.message
    return info.value.message


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_good_token_passes(idp: FakeIdp) -> None:
    claims = await client(idp).validate_id_token(idp.sign(), nonce=NONCE)
    assert claims["sub"] == "u-1"


async def test_tampered_payload(idp: FakeIdp) -> None:
    header, _, sig = idp.sign().split(".")
    now = int(time.time())
    forged = {"iss": idp.issuer, "aud": CLIENT, "sub": "admin", "iat": now, "exp": now + 60}
    msg = await rejected(idp, f"{header}.{_b64(forged)}.{sig}", "signature")
    assert "signature does not verify" in msg


async def test_alg_none(idp: FakeIdp) -> None:
    _, payload, _ = idp.sign().split(".")
    token = f"{_b64({'alg': 'none'})}.{payload}."
    assert "'none' is not accepted" in await rejected(idp, token, "alg")


async def test_rs256_hs256_key_confusion(idp: FakeIdp) -> None:
    """HMAC-signed with the IdP's public key as the secret: the classic confusion."""
    public_pem = idp.keys[0].as_pem(private=False)  # joserfc won't do this; forge by hand
    _, payload, _ = idp.sign().split(".")
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1'})}.{payload}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    assert "'HS256' is not accepted" in await rejected(idp, token, "alg")


async def test_unknown_kid(idp: FakeIdp) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "evil"})
    assert "kid 'evil'" in await rejected(idp, idp.sign(stranger), "unknown_kid")


async def test_key_rotation_refetches_jwks_once(idp: FakeIdp) -> None:
    c = client(idp)
    await c.validate_id_token(idp.sign(), nonce=NONCE)
    new = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    idp.keys = [new, idp.keys[0]]  # the IdP publishes a new key and signs with it
    claims = await c.validate_id_token(idp.sign(new), nonce=NONCE)
    assert claims["sub"] == "u-1"
    assert idp.jwks_hits == 2


async def test_unknown_kid_refetch_is_rate_limited(idp: FakeIdp) -> None:
    c = OidcClient(idp.issuer, CLIENT, "s", jwks_refresh_floor=3600, egress=LOOPBACK)
    await c.validate_id_token(idp.sign(), nonce=NONCE)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "evil"})
    for _ in range(3):
        with pytest.raises(LoginRejected):
            await c.validate_id_token(idp.sign(stranger), nonce=NONCE)
    assert idp.jwks_hits == 1


async def test_wrong_audience(idp: FakeIdp) -> None:
    assert "audience" in await rejected(idp, idp.sign(aud="another-app"), "audience")
    token = idp.sign(aud=[CLIENT, "another-app"], azp="another-app")
    await rejected(idp, token, "audience")


async def test_wrong_issuer(idp: FakeIdp) -> None:
    await rejected(idp, idp.sign(iss="https://evil.example"), "issuer")


async def test_expired_and_clock_skew(idp: FakeIdp) -> None:
    now = int(time.time())
    assert "expired" in await rejected(idp, idp.sign(exp=now - 120), "expired")
    # 30 s past expiry is inside the default 60 s leeway for clock skew.
    await client(idp).validate_id_token(idp.sign(exp=now - 30), nonce=NONCE)
    await rejected(idp, idp.sign(exp=now - 30), "expired", leeway=10)
    await rejected(idp, idp.sign(iat=now + 600), "iat")


async def test_missing_or_wrong_nonce(idp: FakeIdp) -> None:
    assert "no nonce" in await rejected(idp, idp.sign(nonce=None), "nonce")
    assert "does not match" in await rejected(idp, idp.sign(nonce="other"), "nonce")


async def test_discovery_issuer_mismatch(idp: FakeIdp) -> None:
    c = OidcClient(idp.issuer + "/", CLIENT, "s", egress=LOOPBACK)
    with pytest.raises(LoginRejected) as info:
        await c.metadata()
    assert info.value.reason == "discovery_issuer"
