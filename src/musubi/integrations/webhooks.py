"""Incoming webhooks: verified the way each vendor signs them, then read as issues.

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` with the
  webhook's secret; ``X-GitHub-Delivery`` is the delivery's id (kept on redelivery).
* GitLab: ``X-Gitlab-Token`` carries the webhook's secret token itself (GitLab does not
  sign the body); ``X-Gitlab-Event-UUID`` is the delivery's id.
* Azure DevOps service hooks send no signature: the subscription's basic authentication
  password (any user name) is the secret; the event's ``id`` identifies the delivery.
* JIRA Cloud (webhooks registered with a secret): ``X-Hub-Signature: sha256=<hex
  HMAC-SHA256 of the raw body>``; ``X-Atlassian-Webhook-Identifier`` is the id, the same
  on every retry of one delivery.

The comparison is constant-time (:func:`hmac.compare_digest`). A webhook without a
configured secret is refused: an unsigned endpoint would let anyone rewrite specs.

Only the built-in trackers take webhooks (their vendors' signatures are known here); a
webhook for any other integration (a plugin's tracker, a chat) is refused like a bad
signature: a plugin tracker's changes come back through the periodic reconcile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from musubi.integrations.jira import adf_text
from musubi.integrations.tracker import Issue

__all__ = ["BadSignature", "Incoming", "read_webhook", "sign", "verify"]

HEADERS = {
    "github": ("x-hub-signature-256", "x-github-delivery"),
    "jira": ("x-hub-signature", "x-atlassian-webhook-identifier"),
    "gitlab": ("x-gitlab-token", "x-gitlab-event-uuid"),
    "azure_devops": ("authorization", ""),
}


class BadSignature(Exception):
    pass


@dataclass(frozen=True)
class Incoming:
    delivery_id: str
    event: str
    issue: Issue | None  # None: an event that carries no issue change (ping, comment)


def sign(secret: str, body: bytes) -> str:
    """The header value a vendor sends: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(kind: str, secret: str | None, headers: Mapping[str, str], body: bytes) -> None:
    if kind not in HEADERS:
        raise BadSignature(
            f"{kind} integrations take no webhooks: their changes come back through reconcile"
        )
    sig_header, _ = HEADERS[kind]
    given = headers.get(sig_header)
    if not secret:
        raise BadSignature("this integration has no webhook secret configured")
    if not given:
        raise BadSignature(f"missing {sig_header} header")
    if kind == "azure_devops":
        given = _basic_password(given)
        expected = secret
    else:
        expected = secret if kind == "gitlab" else sign(secret, body)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise BadSignature(f"{sig_header} does not match the body")


def read_webhook(kind: str, headers: Mapping[str, str], body: bytes) -> Incoming:
    _, id_header = HEADERS[kind]
    data: dict[str, Any] = json.loads(body)
    delivery = (headers.get(id_header) if id_header else None) or str(
        data.get("id") or hashlib.sha256(body).hexdigest()
    )
    if kind == "azure_devops":
        event = str(data.get("eventType", ""))
        resource = data.get("resource") or {}
        revision = resource.get("revision") if isinstance(resource, dict) else None
        if not event.startswith("workitem.") or not isinstance(revision, dict):
            return Incoming(delivery, event, None)
        from musubi.integrations.azure_devops import work_item_issue

        return Incoming(delivery, event, work_item_issue(revision))
    if kind == "github":
        event = headers.get("x-github-event", "")
        raw = data.get("issue")
        if event != "issues" or not isinstance(raw, dict):
            return Incoming(delivery, event, None)
        return Incoming(delivery, f"issues.{data.get('action', '')}", _github_issue(raw))
    if kind == "gitlab":
        attrs = data.get("object_attributes")
        if data.get("object_kind") != "issue" or not isinstance(attrs, dict):
            return Incoming(delivery, str(data.get("object_kind", "")), None)
        return Incoming(delivery, f"issue.{attrs.get('action', '')}", _gitlab_issue(data))
    event = str(data.get("webhookEvent", ""))
    raw = data.get("issue")
    if not event.startswith("jira:issue_") or not isinstance(raw, dict):
        return Incoming(delivery, event, None)
    return Incoming(delivery, event, _jira_issue(raw))


def _github_issue(raw: dict[str, Any]) -> Issue:
    assignee = raw.get("assignee") or {}
    return Issue(
        key=str(raw["number"]),
        title=raw.get("title") or "",
        body=raw.get("body") or "",
        status=raw.get("state", ""),
        closed=raw.get("state") == "closed",
        labels=tuple(lb["name"] for lb in raw.get("labels", [])),
        url=raw.get("html_url", ""),
        assignee=assignee.get("login"),
    )


def _jira_issue(raw: dict[str, Any]) -> Issue:
    fields = raw.get("fields") or {}
    status = fields.get("status") or {}
    assignee = fields.get("assignee") or {}
    return Issue(
        key=raw["key"],
        title=fields.get("summary") or "",
        body=adf_text(fields.get("description")),
        status=status.get("name", ""),
        closed=(status.get("statusCategory") or {}).get("key") == "done",
        labels=tuple(fields.get("labels") or ()),
        assignee=assignee.get("displayName") or assignee.get("accountId"),
    )


def _gitlab_issue(data: dict[str, Any]) -> Issue:
    attrs = data["object_attributes"]
    assignees = data.get("assignees") or []
    return Issue(
        key=str(attrs["iid"]),
        title=attrs.get("title") or "",
        body=attrs.get("description") or "",
        status=attrs.get("state", ""),
        closed=attrs.get("state") == "closed",
        labels=tuple(lb["title"] for lb in data.get("labels", [])),
        url=attrs.get("url", ""),
        assignee=assignees[0].get("username") if assignees else None,
    )


def _basic_password(value: str) -> str:
    import base64
    import binascii

    if not value.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]
