"""Slack: Block Kit notices through ``slack_sdk``, the ``/musubi`` slash command and the
approve/reject buttons, every request's v0 signature checked.

``slack_sdk`` (pinned in the ``integrations`` extra) does both halves: its
:class:`~slack_sdk.signature.SignatureVerifier` checks ``X-Slack-Signature`` (``v0=`` HMAC
of ``v0:<timestamp>:<body>`` with the app's signing secret) and refuses a timestamp more
than five minutes away, which is the replay window; its ``AsyncWebClient`` posts the
messages, on an aiohttp session whose resolver applies the egress policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from musubi.errors import MusubiError, UpstreamError
from musubi.integrations.chat import ChatNotifier, Notice

if TYPE_CHECKING:
    from musubi.egress.policy import EgressPolicy

__all__ = ["SlackNotifier", "blocks_for", "parse_command", "parse_interaction", "verify_slack"]

APPROVE, REJECT = "musubi_approve", "musubi_reject"


class SlackSignatureError(Exception):
    pass


def _require_sdk() -> None:
    try:
        import slack_sdk  # noqa: F401
    except ImportError as exc:
        raise MusubiError(
            "Slack needs the integrations extra: pip install 'musubi-platform[integrations]'"
        ) from exc


def verify_slack(signing_secret: str | None, headers: Mapping[str, str], body: bytes) -> None:
    _require_sdk()
    from slack_sdk.signature import SignatureVerifier

    if not signing_secret:
        raise SlackSignatureError("this Slack integration has no signing secret configured")
    if "x-slack-signature" not in headers or "x-slack-request-timestamp" not in headers:
        raise SlackSignatureError("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    verifier = SignatureVerifier(signing_secret)
    if not verifier.is_valid_request(body, dict(headers)):
        raise SlackSignatureError("X-Slack-Signature does not match, or the request is stale")


def parse_command(body: bytes) -> tuple[str, str]:
    """(text, user id) of a slash command (form-encoded)."""
    form = parse_qs(body.decode())
    return form.get("text", [""])[0], form.get("user_id", [""])[0]


def parse_interaction(body: bytes) -> tuple[str, str, str]:
    """(action id, run id, user id) of a button press (``payload=`` JSON, form-encoded)."""
    payload = json.loads(parse_qs(body.decode()).get("payload", ["{}"])[0])
    actions = payload.get("actions") or [{}]
    user = (payload.get("user") or {}).get("id", "")
    return actions[0].get("action_id", ""), actions[0].get("value", ""), user


def blocks_for(notice: Notice) -> list[dict[str, Any]]:
    """Block Kit for a notice: a header, the text, its facts, and for an approval the
    approve/reject buttons carrying the run id."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": notice.text[:3000]}},
    ]
    if notice.facts:
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in notice.facts.items()]
        blocks.append({"type": "section", "fields": fields[:10]})
    if notice.kind == "approval_needed" and notice.run_id:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"run:{notice.run_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": notice.run_id,
                    },
                    {
                        "type": "button",
                        "action_id": REJECT,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Reject"},
                        "value": notice.run_id,
                    },
                ],
            }
        )
    return blocks


class SlackNotifier(ChatNotifier):
    vendor = "slack"
    default_base_url = "https://slack.com/api/"
    target_help = "the Slack channel id (e.g. C0123456789)"

    @classmethod
    def from_config(
        cls,
        egress: EgressPolicy,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
    ) -> SlackNotifier:
        return cls(token=secret["token"], channel=target, base_url=base_url, egress=egress)

    def __init__(self, *, token: str, channel: str, base_url: str, egress: EgressPolicy) -> None:
        self.token, self.channel, self.base_url, self.egress = token, channel, base_url, egress

    async def notify(self, notice: Notice) -> None:
        _require_sdk()
        import aiohttp
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web.async_client import AsyncWebClient

        from musubi.egress.clients import EgressResolver, check_literal

        url = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        check_literal(self.egress, url)
        connector = aiohttp.TCPConnector(resolver=EgressResolver(self.egress))
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            client = AsyncWebClient(token=self.token, base_url=url, session=session)
            try:
                await client.chat_postMessage(
                    channel=self.channel, text=notice.title, blocks=blocks_for(notice)
                )
            except SlackApiError as exc:
                raise UpstreamError("slack", str(exc.response.get("error", exc))) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError("slack", f"cannot reach {url}: {exc}") from exc
