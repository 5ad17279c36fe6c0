"""JIRA Cloud (REST v3) and Data Center: issues in one project.

Authentication: Cloud takes ``email`` + API token (HTTP basic); Data Center a personal
access token (``Bearer``), used when no email is configured. Descriptions are written in
the Atlassian Document Format that v3 requires; closing and reopening go through the
project's workflow transitions (to a status whose category is ``done`` / not ``done``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from musubi.errors import InvalidInput
from musubi.integrations.tracker import (
    Issue,
    IssueDraft,
    RateLimiter,
    Tracker,
    TrackerRefused,
    label_for,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["JiraTracker", "adf", "adf_text"]

FIELDS = "summary,description,status,labels,assignee"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph per line)."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        if line
        else {"type": "paragraph", "content": []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_text(node: Any) -> str:
    """The text of an ADF document (paragraphs joined by newlines)."""
    if not isinstance(node, dict):
        return "" if node is None else str(node)
    if node.get("type") == "text":
        return str(node.get("text", ""))
    parts = [adf_text(child) for child in node.get("content", [])]
    return ("\n" if node.get("type") == "doc" else "").join(parts)


class JiraTracker(Tracker):
    vendor = "jira"
    base_url_example = "https://example.atlassian.net"
    # JIRA Cloud's documented cost budget allows about 10 requests a second for one user
    default_rate = 10.0
    target_help = "the JIRA project key (e.g. PROJ)"
    text_options = ("issue_type",)

    @classmethod
    def check_target(cls, target: str) -> None:
        if not target or not target.replace("_", "").isalnum():
            raise InvalidInput(f"target must be {cls.target_help}", field="target")

    @classmethod
    def reference(cls, target: str, key: str) -> str:
        return key  # JIRA keys carry their project: PROJ-12

    @classmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
        limiter: RateLimiter,
    ) -> JiraTracker:
        return cls(
            client,
            base_url=base_url,
            project_key=target,
            token=secret["token"],
            email=secret.get("email"),
            issue_type=str(options.get("issue_type", "Task")),
            limiter=limiter,
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        project_key: str,
        token: str,
        email: str | None = None,
        issue_type: str = "Task",
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(client, limiter)
        self.base = base_url.rstrip("/") + "/rest/api/3"
        self.project_key, self.issue_type = project_key, issue_type
        if email:
            basic = base64.b64encode(f"{email}:{token}".encode()).decode()
            self.headers = {"Authorization": f"Basic {basic}"}
        else:
            self.headers = {"Authorization": f"Bearer {token}"}
        self.headers["Accept"] = "application/json"

    async def _call(self, method: str, path: str, describe: str, **kw: Any) -> httpx.Response:
        try:
            return await self.send(method, self.base + path, describe, headers=self.headers, **kw)
        except TrackerRefused as exc:
            raise _named_field(exc) from exc

    def _issue(self, data: dict[str, Any]) -> Issue:
        fields = data.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        assignee = fields.get("assignee") or {}
        base = self.base.removesuffix("/rest/api/3")
        return Issue(
            key=data["key"],
            title=fields.get("summary") or "",
            body=adf_text(fields.get("description")),
            status=status.get("name", ""),
            closed=category == "done",
            labels=tuple(fields.get("labels") or ()),
            url=f"{base}/browse/{data['key']}",
            assignee=assignee.get("displayName") or assignee.get("accountId"),
            raw=data,
        )

    async def create_issue(self, draft: IssueDraft) -> Issue:
        fields = {
            "project": {"key": self.project_key},
            "issuetype": {"name": self.issue_type},
            "summary": draft.title,
            "description": adf(draft.body),
            "labels": [label_for(draft.item_id), *draft.labels],
        }
        r = await self._call("POST", "/issue", "create issue", json={"fields": fields})
        key = r.json()["key"]
        issue = Issue(key, draft.title, draft.body, "", False, tuple(fields["labels"]))
        if draft.closed:
            issue = await self.update_issue(issue, draft)
        return issue

    async def update_issue(self, current: Issue, draft: IssueDraft) -> Issue:
        fields: dict[str, Any] = {}
        if current.title != draft.title:
            fields["summary"] = draft.title
        if current.body != draft.body:
            fields["description"] = adf(draft.body)
        label = label_for(draft.item_id)
        if draft.item_id and label not in current.labels:
            fields["labels"] = [*current.labels, label]
        if fields:
            await self._call(
                "PUT", f"/issue/{current.key}", f"update {current.key}", json={"fields": fields}
            )
        status = current.status
        if draft.closed != current.closed:
            status = await self._transition(current.key, done=draft.closed)
        return Issue(
            current.key,
            draft.title,
            draft.body,
            status,
            draft.closed,
            tuple(fields.get("labels", current.labels)),
            current.url,
            current.assignee,
        )

    async def _transition(self, key: str, *, done: bool) -> str:
        r = await self._call("GET", f"/issue/{key}/transitions", f"transitions of {key}")
        for t in r.json().get("transitions", []):
            category = ((t.get("to") or {}).get("statusCategory") or {}).get("key")
            if (category == "done") == done:
                body = {"transition": {"id": t["id"]}}
                await self._call("POST", f"/issue/{key}/transitions", f"move {key}", json=body)
                return str((t.get("to") or {}).get("name", ""))
        want = "a done status" if done else "an open status"
        raise TrackerRefused(f"jira: {key} has no transition to {want} in its workflow")

    async def get_issue(self, key: str) -> Issue:
        r = await self._call("GET", f"/issue/{key}", f"read {key}", params={"fields": FIELDS})
        return self._issue(r.json())

    async def find_issue(self, item_id: str) -> Issue | None:
        jql = f'project = "{self.project_key}" AND labels = "{label_for(item_id)}"'
        r = await self._call(
            "GET", "/search/jql", f"search {item_id}", params={"jql": jql, "fields": FIELDS}
        )
        issues = r.json().get("issues") or []
        return self._issue(issues[0]) if issues else None


def _named_field(exc: TrackerRefused) -> TrackerRefused:
    """JIRA's 400 names refused fields in ``errors``: say which in the message."""
    import json

    text = exc.message.split(": ", 2)[-1]
    try:
        body = json.loads(text)
    except ValueError:
        return exc
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return exc
    name, reason = next(iter(errors.items()))
    listed = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return TrackerRefused(
        f"jira refused field {name!r} ({reason}); all: {listed}", status=exc.status, field=name
    )
