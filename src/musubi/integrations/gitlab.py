"""GitLab issues of one project (REST v4, gitlab.com or self-managed).

GitLab publishes no OpenAPI description of these endpoints; this follows the REST
documentation of Issues (``/projects/:id/issues``): ``labels`` as a comma-separated
string, ``state_event`` ``close``/``reopen``, states ``opened``/``closed``, the project
given by its URL-encoded path. Authentication is a personal, project or group access token
in ``PRIVATE-TOKEN``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from musubi.errors import InvalidInput
from musubi.integrations.tracker import Issue, IssueDraft, RateLimiter, Tracker, label_for

if TYPE_CHECKING:
    import httpx

__all__ = ["GitLabTracker"]


class GitLabTracker(Tracker):
    vendor = "gitlab"
    default_base_url = "https://gitlab.com"
    default_rate = 5.0
    target_help = "the GitLab project path (group/project) or id"

    @classmethod
    def check_target(cls, target: str) -> None:
        if not target.strip() or target.startswith("/"):
            raise InvalidInput(f"target must be {cls.target_help}", field="target")

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
    ) -> GitLabTracker:
        return cls(
            client, base_url=base_url, project=target, token=secret["token"], limiter=limiter
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        project: str,
        token: str,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(client, limiter)
        self.base = f"{base_url.rstrip('/')}/api/v4/projects/{quote(project, safe='')}/issues"
        self.headers = {"PRIVATE-TOKEN": token}

    def _issue(self, data: dict[str, Any]) -> Issue:
        assignee = data.get("assignee") or {}
        return Issue(
            key=str(data["iid"]),
            title=data.get("title") or "",
            body=data.get("description") or "",
            status=data.get("state", ""),
            closed=data.get("state") == "closed",
            labels=tuple(data.get("labels") or ()),
            url=data.get("web_url", ""),
            assignee=assignee.get("username"),
            raw=data,
        )

    async def create_issue(self, draft: IssueDraft) -> Issue:
        body = {
            "title": draft.title,
            "description": draft.body,
            "labels": ",".join([label_for(draft.item_id), *draft.labels]),
        }
        r = await self.send("POST", self.base, "create issue", headers=self.headers, json=body)
        issue = self._issue(r.json())
        if draft.closed:
            issue = await self.update_issue(issue, draft)
        return issue

    async def update_issue(self, current: Issue, draft: IssueDraft) -> Issue:
        body: dict[str, Any] = {}
        if current.title != draft.title:
            body["title"] = draft.title
        if current.body != draft.body:
            body["description"] = draft.body
        if current.closed != draft.closed:
            body["state_event"] = "close" if draft.closed else "reopen"
        label = label_for(draft.item_id)
        if draft.item_id and label not in current.labels:
            body["add_labels"] = label
        if not body:
            return current
        url = f"{self.base}/{current.key}"
        r = await self.send("PUT", url, f"update #{current.key}", headers=self.headers, json=body)
        return self._issue(r.json())

    async def get_issue(self, key: str) -> Issue:
        r = await self.send("GET", f"{self.base}/{key}", f"read #{key}", headers=self.headers)
        return self._issue(r.json())

    async def find_issue(self, item_id: str) -> Issue | None:
        params = {"labels": label_for(item_id), "state": "all", "per_page": "5"}
        r = await self.send(
            "GET", self.base, f"search {item_id}", headers=self.headers, params=params
        )
        found = r.json()
        return self._issue(found[0]) if found else None
