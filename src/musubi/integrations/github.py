"""GitHub issues of one repository (REST, API version 2022-11-28)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from musubi.errors import InvalidInput
from musubi.integrations.tracker import Issue, IssueDraft, RateLimiter, Tracker, label_for

if TYPE_CHECKING:
    import httpx

__all__ = ["GitHubTracker"]

API_VERSION = "2022-11-28"


class GitHubTracker(Tracker):
    vendor = "github"
    default_base_url = "https://api.github.com"
    # GitHub asks for under 80 content-creating requests a minute
    default_rate = 1.0
    target_help = "the repository as owner/name"

    @classmethod
    def check_target(cls, target: str) -> None:
        if target.count("/") != 1 or not all(target.split("/")):
            raise InvalidInput("target must be the repository as owner/name", field="target")

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
    ) -> GitHubTracker:
        return cls(
            client, base_url=base_url, repository=target, token=secret["token"], limiter=limiter
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        repository: str,
        token: str,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(client, limiter)
        self.base = f"{base_url.rstrip('/')}/repos/{repository}/issues"
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def _issue(self, data: dict[str, Any]) -> Issue:
        assignee = data.get("assignee") or {}
        return Issue(
            key=str(data["number"]),
            title=data.get("title") or "",
            body=data.get("body") or "",
            status=data.get("state", ""),
            closed=data.get("state") == "closed",
            labels=tuple(lb["name"] if isinstance(lb, dict) else lb for lb in data["labels"]),
            url=data.get("html_url", ""),
            assignee=assignee.get("login"),
            raw=data,
        )

    async def create_issue(self, draft: IssueDraft) -> Issue:
        body = {
            "title": draft.title,
            "body": draft.body,
            "labels": [label_for(draft.item_id), *draft.labels],
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
            body["body"] = draft.body
        if current.closed != draft.closed:
            body["state"] = "closed" if draft.closed else "open"
        label = label_for(draft.item_id)
        if draft.item_id and label not in current.labels:
            body["labels"] = [*current.labels, label]
        if not body:
            return current
        url = f"{self.base}/{current.key}"
        r = await self.send("PATCH", url, f"update #{current.key}", headers=self.headers, json=body)
        return self._issue(r.json())

    async def get_issue(self, key: str) -> Issue:
        r = await self.send("GET", f"{self.base}/{key}", f"read #{key}", headers=self.headers)
        return self._issue(r.json())

    async def find_issue(self, item_id: str) -> Issue | None:
        params = {"labels": label_for(item_id), "state": "all", "per_page": "5"}
        r = await self.send(
            "GET", self.base, f"search {item_id}", headers=self.headers, params=params
        )
        found = [i for i in r.json() if "pull_request" not in i]
        return self._issue(found[0]) if found else None
