"""Azure DevOps Boards: work items of one project (REST 7.1, JSON Patch).

Work items are created and changed with JSON Patch documents
(``application/json-patch+json``) on ``System.Title``, ``System.Description`` (HTML),
``System.Tags`` (``; ``-separated: the item's label goes there) and ``System.State``.
Closing moves the item to ``options.closed_state`` (default ``Closed``; ``Done`` in the
Basic process), reopening to ``options.open_state`` (default ``New``; ``To Do``). An item is
found by its tag with a WIQL query. Authentication: a personal access token (HTTP basic,
empty user name).
"""

from __future__ import annotations

import base64
import html
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from musubi.integrations.tracker import Issue, IssueDraft, RateLimiter, Tracker, label_for

if TYPE_CHECKING:
    import httpx

__all__ = ["AzureBoardsTracker", "work_item_issue"]

API = {"api-version": "7.1"}
PATCH = "application/json-patch+json"
CLOSED = frozenset({"closed", "done", "resolved", "removed", "completed"})


def to_html(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.split("\n"))


def from_html(value: str | None) -> str:
    text = re.sub(r"<br\s*/?>", "\n", value or "")
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def work_item_issue(data: dict[str, Any]) -> Issue:
    """A work item (or a service hook's ``resource.revision``) as an :class:`Issue`."""
    fields = data.get("fields") or {}
    tags = [t.strip() for t in (fields.get("System.Tags") or "").split(";") if t.strip()]
    state = fields.get("System.State") or ""
    assigned = fields.get("System.AssignedTo") or {}
    links = (data.get("_links") or {}).get("html") or {}
    return Issue(
        key=str(data["id"]),
        title=fields.get("System.Title") or "",
        body=from_html(fields.get("System.Description")),
        status=state,
        closed=state.lower() in CLOSED,
        labels=tuple(tags),
        url=links.get("href", ""),
        assignee=assigned.get("displayName") if isinstance(assigned, dict) else assigned,
        raw=data,
    )


class AzureBoardsTracker(Tracker):
    vendor = "azure_devops"
    base_url_example = "https://dev.azure.com/<organisation>"
    default_rate = 5.0
    target_help = "the Azure DevOps project name"
    text_options = ("work_item_type", "team", "closed_state", "open_state")

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
    ) -> AzureBoardsTracker:
        return cls(
            client,
            base_url=base_url,
            project=target,
            token=secret["token"],
            work_item_type=str(options.get("work_item_type", "Task")),
            team=options.get("team"),
            closed_state=str(options.get("closed_state", "Closed")),
            open_state=str(options.get("open_state", "New")),
            limiter=limiter,
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        project: str,
        token: str,
        work_item_type: str = "Task",
        team: str | None = None,
        closed_state: str = "Closed",
        open_state: str = "New",
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(client, limiter)
        root = f"{base_url.rstrip('/')}/{quote(project)}"
        self.items = f"{root}/_apis/wit/workitems"
        self.wiql = f"{root}/{quote(team or f'{project} Team')}/_apis/wit/wiql"
        self.type = work_item_type
        self.closed_state, self.open_state = closed_state, open_state
        basic = base64.b64encode(f":{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    async def _patch(self, method: str, url: str, ops: list[dict[str, Any]], what: str) -> Issue:
        headers = {**self.headers, "Content-Type": PATCH}
        r = await self.send(method, url, what, headers=headers, params=API, json=ops)
        return work_item_issue(r.json())

    async def create_issue(self, draft: IssueDraft) -> Issue:
        tags = "; ".join([label_for(draft.item_id), *draft.labels])
        ops = [
            {"op": "add", "path": "/fields/System.Title", "value": draft.title},
            {"op": "add", "path": "/fields/System.Description", "value": to_html(draft.body)},
            {"op": "add", "path": "/fields/System.Tags", "value": tags},
        ]
        if draft.closed:
            ops.append({"op": "add", "path": "/fields/System.State", "value": self.closed_state})
        return await self._patch("POST", f"{self.items}/${quote(self.type)}", ops, "create")

    async def update_issue(self, current: Issue, draft: IssueDraft) -> Issue:
        ops: list[dict[str, Any]] = []
        if current.title != draft.title:
            ops.append({"op": "add", "path": "/fields/System.Title", "value": draft.title})
        if current.body != draft.body:
            ops.append(
                {"op": "add", "path": "/fields/System.Description", "value": to_html(draft.body)}
            )
        if current.closed != draft.closed:
            state = self.closed_state if draft.closed else self.open_state
            ops.append({"op": "add", "path": "/fields/System.State", "value": state})
        label = label_for(draft.item_id)
        if draft.item_id and label not in current.labels:
            tags = "; ".join([*current.labels, label])
            ops.append({"op": "add", "path": "/fields/System.Tags", "value": tags})
        if not ops:
            return current
        return await self._patch(
            "PATCH", f"{self.items}/{current.key}", ops, f"update {current.key}"
        )

    async def get_issue(self, key: str) -> Issue:
        r = await self.send(
            "GET", f"{self.items}/{key}", f"read {key}", headers=self.headers, params=API
        )
        return work_item_issue(r.json())

    async def find_issue(self, item_id: str) -> Issue | None:
        label = label_for(item_id).replace("'", "''")
        query = (
            "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project "
            f"AND [System.Tags] CONTAINS '{label}'"
        )
        r = await self.send(
            "POST",
            self.wiql,
            f"search {item_id}",
            headers=self.headers,
            params=API,
            json={"query": query},
        )
        found = r.json().get("workItems") or []
        return await self.get_issue(str(found[0]["id"])) if found else None
