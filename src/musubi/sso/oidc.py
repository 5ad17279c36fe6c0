"""OpenID Connect relying party: discovery, JWKS with rotation, authorization code + PKCE,
ID-token validation, userinfo.

The code exchange is a plain form POST; JOSE work uses joserfc (authlib's own successor to
``authlib.jose``). ID-token checks are done one by one here so that each
refusal says exactly what was wrong: only asymmetric algorithms (no ``none``, no HMAC,
so an RSA public key can never be used as an HMAC secret), a known ``kid`` (an unknown
one triggers one JWKS refetch: key rotation), the signature, ``iss``, ``aud``/``azp``,
``exp``/``iat`` with clock-skew leeway, and ``nonce``.

Every fetch (discovery, JWKS, token, userinfo) goes through the tenant's egress policy
(:mod:`musubi.egress`), follows no redirect, and fails in one way: a :class:`LoginRejected`
whose message names what could not be read but not why, answered when the fetch's time
limit is up whatever the cause. So the public login route cannot be used to learn whether
a port is open, closed or filtered, or what another service answers.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from musubi.egress import EgressPolicy
from musubi.sso.errors import LoginRejected, MissingExtra

__all__ = ["ASYMMETRIC_ALGS", "JwksCache", "OidcClient", "ProviderMetadata", "pkce_challenge"]

log = logging.getLogger("musubi.sso")

ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_HTTP_TIMEOUT = 5.0  # each fetch's limit, and when a failed one is answered


def _joserfc() -> Any:
    try:
        import joserfc.jwt
    except ImportError as exc:
        raise MissingExtra("joserfc") from exc
    return joserfc


async def _failed(reason: str, what: str, started: float, limit: float) -> LoginRejected:
    """The one refusal of a failed fetch, returned no sooner than ``limit`` seconds after
    ``started`` (a refused connection is as slow as a timeout)."""
    await asyncio.sleep(max(0.0, started + limit - time.monotonic()))
    return LoginRejected(reason, f"the identity provider's {what} could not be read")


async def _get_json(
    egress: EgressPolicy, url: str, reason: str, what: str, limit: float, **kwargs: Any
) -> dict[str, Any]:
    """GET ``url`` (a JSON object) through the egress policy; any failure is one refusal."""
    import httpx  # imported per login, not by every worker (httpx loads its CLI's rich)

    from musubi.egress.clients import egress_client

    started = time.monotonic()
    try:
        async with egress_client(egress, timeout=limit) as http:
            response = await http.get(url, **kwargs)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (httpx.HTTPError, ValueError) as exc:
        log.info("OIDC %s fetch from %s failed: %s", what, url, type(exc).__name__)
        raise await _failed(reason, what, started, limit) from None


def pkce_challenge(verifier: str) -> str:
    import hashlib

    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: frozenset[str]

    @classmethod
    def from_discovery(cls, issuer: str, doc: dict[str, Any]) -> ProviderMetadata:
        if doc.get("issuer") != issuer:  # mix-up protection (OIDC Discovery §4.3)
            raise LoginRejected(
                "discovery_issuer", f"discovery says issuer {doc.get('issuer')!r}, not {issuer!r}"
            )
        offered = set(doc.get("id_token_signing_alg_values_supported") or ["RS256"])
        return cls(
            issuer=issuer,
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
            userinfo_endpoint=doc.get("userinfo_endpoint"),
            end_session_endpoint=doc.get("end_session_endpoint"),
            algorithms=frozenset(offered & ASYMMETRIC_ALGS),
        )


class JwksCache:
    """An IdP's signing keys. An unknown ``kid`` refetches the set, at most once per
    ``refresh_floor`` seconds (so a flood of forged kids cannot hammer the IdP)."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        refresh_floor: float = 10.0,
        egress: EgressPolicy | None = None,
        limit: float = _HTTP_TIMEOUT,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.refresh_floor = refresh_floor
        self.egress = egress or EgressPolicy()
        self.limit = limit
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None

    async def _fetch(self) -> None:
        jose = _joserfc()
        data = await _get_json(self.egress, self.jwks_uri, "jwks", "signing keys", self.limit)
        try:
            keyset = jose.jwk.KeySet.import_key_set(data)
        except (ValueError, TypeError, KeyError, jose.errors.JoseError) as exc:
            raise LoginRejected("jwks", "the identity provider's signing keys are invalid") from exc
        self._keys = {str(k.kid or ""): k for k in keyset.keys}
        self._fetched_at = time.monotonic()

    async def key(self, kid: str | None) -> Any:
        if self._fetched_at is None:
            await self._fetch()
        found = self._pick(kid)
        stale = self._fetched_at is not None and (
            time.monotonic() - self._fetched_at >= self.refresh_floor
        )
        if found is None and stale:
            await self._fetch()  # the IdP may have rotated its keys
            found = self._pick(kid)
        if found is None:
            raise LoginRejected("unknown_kid", f"no signing key with kid {kid!r} at the IdP")
        return found

    def _pick(self, kid: str | None) -> Any:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None


def _segment(part: str) -> dict[str, Any]:
    data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


class OidcClient:
    """One IdP of one tenant: discovery, login URL, code exchange, token validation."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        leeway: int = 60,
        jwks_refresh_floor: float = 10.0,
        clock: Callable[[], float] = time.time,
        egress: EgressPolicy | None = None,
        fetch_limit: float = _HTTP_TIMEOUT,
    ) -> None:
        self.issuer = issuer  # compared exactly with discovery and the tokens
        self.egress = egress or EgressPolicy()  # the tenant's; default: public addresses
        self.fetch_limit = fetch_limit
        self.client_id = client_id
        self.client_secret = client_secret
        self.leeway = leeway
        self.jwks_refresh_floor = jwks_refresh_floor
        self.clock = clock
        self._meta: ProviderMetadata | None = None
        self._jwks: JwksCache | None = None

    async def metadata(self) -> ProviderMetadata:
        if self._meta is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await _get_json(
                self.egress, url, "discovery", "discovery document", self.fetch_limit
            )
            try:
                self._meta = ProviderMetadata.from_discovery(self.issuer, doc)
            except KeyError as exc:
                raise LoginRejected("discovery", f"the discovery document has no {exc}") from exc
            self._jwks = JwksCache(
                self._meta.jwks_uri,
                refresh_floor=self.jwks_refresh_floor,
                egress=self.egress,
                limit=self.fetch_limit,
            )
        return self._meta

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str, scopes: list[str]
    ) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(dict.fromkeys(["openid", *scopes])),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in meta.authorization_endpoint else "?"
        return f"{meta.authorization_endpoint}{sep}{urlencode(query)}"

    async def exchange(self, code: str, *, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """Trade the code for tokens: a form POST with client_secret_basic and the PKCE
        verifier (RFC 6749 §4.1.3, RFC 7636), through the egress policy."""
        import httpx

        from musubi.egress.clients import egress_client

        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        started = time.monotonic()
        try:
            async with egress_client(self.egress, timeout=self.fetch_limit) as http:
                response = await http.post(
                    meta.token_endpoint,
                    data=form,
                    auth=(self.client_id, self.client_secret),
                    headers={"Accept": "application/json"},
                )
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (httpx.HTTPError, ValueError) as exc:
            log.info("OIDC token fetch failed: %s", type(exc).__name__)
            failed = await _failed("code_exchange", "token endpoint", started, self.fetch_limit)
            raise failed from None
        error = data.get("error")
        if isinstance(error, str):  # an OAuth error answer (RFC 6749 §5.2)
            described = data.get("error_description")
            why = f"{error}: {described}" if isinstance(described, str) else error
            raise LoginRejected("code_exchange", f"the IdP refused the code ({why[:200]})")
        if response.status_code != 200 or not isinstance(data.get("access_token"), str):
            raise await _failed("code_exchange", "token endpoint", started, self.fetch_limit)
        return data

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        jose = _joserfc()
        meta = await self.metadata()
        parts = id_token.split(".")
        try:
            header = _segment(parts[0])
        except (ValueError, IndexError) as exc:
            raise LoginRejected("malformed", "the ID token is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in meta.algorithms:
            allowed = ", ".join(sorted(meta.algorithms))
            raise LoginRejected("alg", f"ID token algorithm {alg!r} is not accepted ({allowed})")
        if len(parts) != 3 or not parts[2]:
            raise LoginRejected("malformed", "the ID token has no signature")
        assert self._jwks is not None
        key = await self._jwks.key(header.get("kid"))
        try:
            claims = jose.jwt.decode(id_token, key, algorithms=[alg]).claims
        except jose.errors.BadSignatureError as exc:
            raise LoginRejected("signature", "the ID token signature does not verify") from exc
        except jose.errors.JoseError as exc:
            raise LoginRejected("malformed", f"the ID token does not decode: {exc}") from exc
        self._check_claims(claims, nonce)
        return dict(claims)

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        now = self.clock()
        if claims.get("iss") != self.issuer:
            raise LoginRejected("issuer", f"ID token issuer {claims.get('iss')!r} is not ours")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in audiences:
            raise LoginRejected("audience", f"ID token audience {aud!r} is not this client")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise LoginRejected("audience", "ID token has several audiences and another azp")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + self.leeway < now:
            raise LoginRejected("expired", "the ID token has expired")
        if not isinstance(iat, int | float) or iat - self.leeway > now:
            raise LoginRejected("iat", "the ID token is issued in the future")
        sent = claims.get("nonce")
        if not isinstance(sent, str):
            raise LoginRejected("nonce", "the ID token carries no nonce")
        if not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise LoginRejected("nonce", "the ID token nonce does not match this login")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise LoginRejected("subject", "the ID token has no subject")

    async def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """Userinfo claims; its ``sub`` must be the ID token's (OIDC Core §5.3.2)."""
        meta = await self.metadata()
        if not meta.userinfo_endpoint or not access_token:
            return {}
        info = await _get_json(
            self.egress,
            meta.userinfo_endpoint,
            "userinfo",
            "userinfo",
            self.fetch_limit,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise LoginRejected("userinfo", "userinfo is about another subject")
        return info
