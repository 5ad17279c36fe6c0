"""Fakes of Slack's Web API (``chat.postMessage``), a Teams Workflows webhook and the Bot
Framework's OpenID metadata + JWKS, on loopback; and the vendors' ways of signing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.integrations.fakes import FakeVendor

SPECS = Path(__file__).parents[1] / "fixtures" / "specs"
BLOCK_TYPES = {"header", "section", "actions", "divider", "context", "image"}


def slack_signature(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Headers Slack sends: ``v0=`` HMAC-SHA256 of ``v0:<ts>:<body>``."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


class FakeSlack(FakeVendor):
    """``POST /api/chat.postMessage``: the parameters checked against Slack's description
    (``chat.postMessage.json``: required ``channel``, a token, no unknown parameter),
    the blocks against Block Kit's shape; messages kept per channel."""

    vendor = "slack"

    def __init__(self, token: str = "xoxb-fake-0001") -> None:  # noqa: S107
        super().__init__(token)
        op = json.loads((SPECS / "slack" / "chat.postMessage.json").read_text())
        self.params = {p["name"]: p for p in op["paths"]["/chat.postMessage"]["post"]["parameters"]}
        self.messages: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/api/{method}", self._slack, methods=["POST"])])

    async def _slack(self, request: Request) -> Response:
        method = request.path_params["method"]
        data: dict[str, Any] = json.loads(await request.body() or b"{}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if method != "chat.postMessage":
            return JSONResponse({"ok": False, "error": "unknown_method"})
        problems = [f"unknown parameter {k}" for k in data if k not in self.params]
        problems += [
            f"missing {n}"
            for n, p in self.params.items()
            if p.get("required") and n != "token" and n not in data
        ]
        for block in data.get("blocks") or []:
            if block.get("type") not in BLOCK_TYPES:
                problems.append(f"block type {block.get('type')!r}")
            if block.get("type") == "actions":
                for el in block["elements"]:
                    if el["type"] != "button" or len(el.get("value", "")) > 2000:
                        problems.append(f"bad action element {el}")
        if problems:
            self.violations += problems
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        self.messages.append(data)
        return JSONResponse({"ok": True, "channel": data["channel"], "ts": f"{time.time():.6f}"})

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        raise NotImplementedError


class FakeTeams(FakeVendor):
    """A Workflows webhook (cards validated against Adaptive Card 1.5's schema) and the
    Bot Framework's OpenID metadata and JWKS; :meth:`bot_token` issues tokens as the Bot
    Framework does (RS256, iss ``https://api.botframework.com``, aud the bot's app id)."""

    vendor = "teams"

    def __init__(self) -> None:
        super().__init__("")
        self.key = RSAKey.generate_key(2048, parameters={"kid": "bf-key-1", "use": "sig"})
        self.schema = json.loads((SPECS / "teams" / "adaptive-card-1.5.0.schema.json").read_text())
        self.cards: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/openid", self._openid),
                Route("/keys", self._keys),
                Route("/workflow", self._workflow, methods=["POST"]),
            ]
        )

    async def _openid(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": "https://api.botframework.com",
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _keys(self, request: Request) -> Response:
        public = self.key.as_dict(private=False)
        return JSONResponse({"keys": [{**public, "endorsements": ["msteams"]}]})

    async def _workflow(self, request: Request) -> Response:
        body = await request.json()
        try:
            [attachment] = body["attachments"]
            assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
            jsonschema.validate(attachment["content"], self.schema)
        except (AssertionError, KeyError, ValueError, jsonschema.ValidationError) as exc:
            self.violations.append(str(exc)[:300])
            return JSONResponse({"error": "bad card"}, 400)
        self.cards.append(attachment["content"])
        return Response(status_code=202)

    def bot_token(
        self, app_id: str, service_url: str, *, key: RSAKey | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": "https://api.botframework.com",
            "aud": app_id,
            "exp": now + 3600,
            "nbf": now - 10,
            "serviceurl": service_url,
            **claims,
        }
        return jwt.encode({"alg": "RS256", "kid": "bf-key-1"}, payload, key or self.key)

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        raise NotImplementedError
