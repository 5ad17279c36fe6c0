"""Microsoft Teams: Adaptive Card notices through a Workflows webhook, and the bot's
messaging endpoint with the Bot Framework's JWT checked.

The Bot Framework SDK for Python is archived, so the token is validated here with
``joserfc`` (a maintained JOSE library, already MUSUBI's for OIDC): the OpenID metadata
(``https://login.botframework.com/v1/.well-known/openidconfiguration`` unless configured)
names the JWKS; the token must be RS256-signed by one of its keys, issued by
``https://api.botframework.com``, for the bot's app id (``aud``), within its ``nbf``/``exp``
(five minutes of clock skew, as the Bot Framework allows), and the activity's
``serviceUrl`` must equal the token's ``serviceurl`` claim. Keys are cached for an hour.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from musubi.errors import UpstreamError
from musubi.integrations.chat import ChatNotifier, Notice

if TYPE_CHECKING:
    import httpx

    from musubi.egress.policy import EgressPolicy

__all__ = ["BOTFRAMEWORK_ISSUER", "BotTokenError", "BotTokenValidator", "TeamsNotifier", "card_for"]

BOTFRAMEWORK_ISSUER = "https://api.botframework.com"
OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
SKEW_S = 300


class BotTokenError(Exception):
    pass


class BotTokenValidator:
    def __init__(self, client: httpx.AsyncClient, openid_url: str = OPENID_URL) -> None:
        self.client, self.openid_url = client, openid_url
        self._keys: Any = None
        self._at = 0.0

    async def _keyset(self, refresh: bool = False) -> Any:
        import httpx
        from joserfc.jwk import KeySet

        if self._keys is None or refresh or time.time() - self._at > 3600:
            try:
                meta = (await self.client.get(self.openid_url)).raise_for_status().json()
                jwks = (await self.client.get(meta["jwks_uri"])).raise_for_status().json()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise UpstreamError("teams", f"Bot Framework OpenID metadata: {exc}") from exc
            self._keys, self._at = KeySet.import_key_set(jwks), time.time()
        return self._keys

    async def validate(
        self, authorization: str | None, app_id: str, service_url: str
    ) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import JoseError

        if not authorization or not authorization.startswith("Bearer "):
            raise BotTokenError("missing Bearer token")
        token = authorization[7:]
        try:
            try:
                decoded = jwt.decode(token, await self._keyset(), algorithms=["RS256"])
            except JoseError:  # a key rolled over since the cache was filled
                decoded = jwt.decode(token, await self._keyset(refresh=True), algorithms=["RS256"])
        except (JoseError, ValueError) as exc:
            raise BotTokenError(f"token signature or format refused: {exc}") from exc
        claims = decoded.claims
        now = time.time()
        if claims.get("iss") != BOTFRAMEWORK_ISSUER:
            raise BotTokenError(f"issuer {claims.get('iss')!r} is not the Bot Framework")
        if claims.get("aud") != app_id:
            raise BotTokenError("the token is for another bot (aud)")
        if float(claims.get("exp", 0)) + SKEW_S < now:
            raise BotTokenError("the token has expired")
        if float(claims.get("nbf", 0)) - SKEW_S > now:
            raise BotTokenError("the token is not valid yet")
        if claims.get("serviceurl") and claims["serviceurl"] != service_url:
            raise BotTokenError("the activity's serviceUrl differs from the token's")
        return dict(claims)


def card_for(notice: Notice) -> dict[str, Any]:
    """An Adaptive Card (schema 1.5) for a notice; approvals get Action.Submit buttons."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": notice.text, "wrap": True},
    ]
    if notice.facts:
        facts = [{"title": k, "value": v} for k, v in notice.facts.items()]
        body.append({"type": "FactSet", "facts": facts})
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
    }
    if notice.kind == "approval_needed" and notice.run_id:
        card["actions"] = [
            {"type": "Action.Submit", "title": t, "data": {"musubi": verb, "run": notice.run_id}}
            for t, verb in (("Approve", "approve"), ("Reject", "reject"))
        ]
    return card


class TeamsNotifier(ChatNotifier):
    """Posts to a Teams channel through a Workflows ("When a Teams webhook request is
    received") URL; Office 365 connectors are being retired."""

    vendor = "teams"
    base_url_example = "https://<tenant>.logic.azure.com/workflows/…"
    needs_token = False  # the workflow URL is the credential; the bot's tokens are checked
    target_help = "the Teams bot's app id (the tokens' aud)"

    @classmethod
    def from_config(
        cls,
        egress: EgressPolicy,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
    ) -> TeamsNotifier:
        from musubi.egress.clients import egress_client

        return cls(egress_client(egress, timeout=30.0), base_url)

    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self.client, self.url = client, webhook_url

    async def notify(self, notice: Notice) -> None:
        import httpx

        body = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": card_for(notice),
                }
            ],
        }
        try:
            r = await self.client.post(self.url, json=body)
        except httpx.TransportError as exc:
            raise UpstreamError("teams", f"cannot reach the workflow: {exc}") from exc
        if r.status_code >= 300:
            raise UpstreamError("teams", f"the workflow answered {r.status_code}", r.status_code)

    async def aclose(self) -> None:
        await self.client.aclose()
