"""Stateful fakes of JIRA Cloud and GitHub issues, served by uvicorn on loopback.

Every request MUSUBI sends is validated with ``openapi-core`` against the vendor's own
description (``tests/fixtures/specs/*/…trimmed.json``, cut from ``../shared/specs`` by
``tests/fixtures/specs/trim.py``); a request that breaks it is answered 400 and kept in
``violations``, which the tests assert empty. Webhooks go out signed the way the vendor
signs them. Faults (5xx, 429 with Retry-After, latency, a rate limit, a required field)
are switched on per test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from musubi.integrations.webhooks import sign

SPECS = Path(__file__).parents[1] / "fixtures" / "specs"
JIRA_SPEC = SPECS / "jira" / "jira-platform-swagger-v3.v3.trimmed.json"
GITHUB_SPEC = SPECS / "github" / "api.github.com.trimmed.json"


@lru_cache(maxsize=2)
def _openapi(path: Path) -> OpenAPI:
    return OpenAPI.from_dict(json.loads(path.read_text()))


@dataclass
class Faults:
    """What the fake does wrong, on purpose."""

    statuses: list[int] = field(default_factory=list)  # answer these next, in order
    retry_after: str = "1"
    latency_s: float = 0.0
    rate_per_s: float = 0.0  # > 0: a 429 for each request over this rate
    required_field: str | None = None  # JIRA: refuse creates lacking it


class FakeVendor:
    vendor = ""
    spec: Path
    server_url = ""

    def __init__(self, token: str) -> None:
        self.token = token
        self.faults = Faults()
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.rejected_429 = 0
        self._window: list[float] = []
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH"])]
        )
        self.url = ""

    # -- plumbing ------------------------------------------------------------------------
    def _validate(self, request: Request, body: bytes) -> str | None:
        mock = MockRequest(
            self.server_url,
            request.method.lower(),
            request.url.path,
            args=dict(request.query_params),
            data=body or None,
            headers=dict(request.headers),
            content_type=request.headers.get("content-type", "application/json").split(";")[0],
        )
        try:
            _openapi(self.spec).validate_request(mock)
        except Exception as exc:  # openapi-core raises a family of errors; all are violations
            detail = getattr(exc, "schema_errors", None) or getattr(exc, "__cause__", None)
            return f"{request.method} {request.url.path}: {exc} {detail or ''}"
        return None

    def _limited(self) -> bool:
        if self.faults.rate_per_s <= 0:
            return False
        now = time.monotonic()
        with self._lock:
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= self.faults.rate_per_s:
                return True
            self._window.append(now)
        return False

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((request.method, request.url.path))
        response = self._answer(request, body)
        if self.faults.latency_s:  # the change is made, the answer is slow (or lost)
            await asyncio.sleep(self.faults.latency_s)
        return response

    def _answer(self, request: Request, body: bytes) -> Response:
        if self._limited():
            self.rejected_429 += 1
            return JSONResponse({"message": "rate limited"}, 429, {"Retry-After": "1"})
        if self.faults.statuses:
            status = self.faults.statuses.pop(0)
            headers = {"Retry-After": self.faults.retry_after} if status == 429 else {}
            return JSONResponse({"message": f"injected {status}"}, status, headers)
        if not self._authorised(request):
            return JSONResponse({"message": "Bad credentials"}, 401)
        problem = self._validate(request, body)
        if problem:
            self.violations.append(problem)
            return JSONResponse({"message": problem}, 400)
        data = json.loads(body) if body else None
        return self.route(request.method, request.url.path, dict(request.query_params), data)

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        raise NotImplementedError

    @contextmanager
    def serve(self) -> Iterator[FakeVendor]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(  # keep-alive: see tests/conftest.py
            self.app, log_level="warning", lifespan="off", timeout_keep_alive=60
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(5)

    async def post_webhook(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        raw = json.dumps(body).encode()
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                url, content=raw, headers={"content-type": "application/json", **headers}
            )


def _adf_text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    sep = "\n" if node.get("type") == "doc" else ""
    return sep.join(_adf_text(c) for c in node.get("content", []))


JIRA_STATUSES = {
    "To Do": ("new", "11"),
    "In Progress": ("indeterminate", "21"),
    "Done": ("done", "31"),
}


class FakeJira(FakeVendor):
    """JIRA Cloud REST v3: issues of any project, the workflow To Do → In Progress → Done."""

    vendor = "jira"
    spec = JIRA_SPEC
    server_url = "https://your-domain.atlassian.net"

    def __init__(self, token: str = "jira-token", email: str = "bot@example.com") -> None:  # noqa: S107
        super().__init__(token)
        self.email = email
        self.issues: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(10001)

    def _authorised(self, request: Request) -> bool:
        import base64

        basic = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return request.headers.get("authorization") in (f"Basic {basic}", f"Bearer {self.token}")

    @staticmethod
    def _status(name: str) -> dict[str, Any]:
        category, sid = JIRA_STATUSES[name]
        return {"name": name, "id": sid, "statusCategory": {"key": category}}

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        base = "/rest/api/3"
        if method == "POST" and path == f"{base}/issue":
            fields = data["fields"]
            need = self.faults.required_field
            if need and need not in fields:
                errors = {need: f"{need} is required."}
                return JSONResponse({"errorMessages": [], "errors": errors}, 400)
            n = next(self._ids)
            key = f"{fields['project']['key']}-{n - 10000}"
            self.issues[key] = {
                "id": str(n),
                "key": key,
                "fields": {
                    "summary": fields["summary"],
                    "description": fields.get("description"),
                    "labels": list(fields.get("labels", [])),
                    "status": self._status("To Do"),
                    "assignee": None,
                    "project": fields["project"],
                },
            }
            return JSONResponse(
                {"id": str(n), "key": key, "self": f"{self.url}{base}/issue/{n}"}, 201
            )
        if method == "GET" and path == f"{base}/search/jql":
            m = re.search(r'labels = "([^"]+)"', query.get("jql", ""))
            found = [i for i in self.issues.values() if m and m.group(1) in i["fields"]["labels"]]
            return JSONResponse({"issues": found, "isLast": True})
        m = re.fullmatch(rf"{base}/issue/([^/]+)(/transitions)?", path)
        if m is None or m.group(1) not in self.issues:
            return JSONResponse({"errorMessages": ["Issue does not exist"], "errors": {}}, 404)
        issue = self.issues[m.group(1)]
        if m.group(2):
            if method == "GET":
                ts = [
                    {"id": sid, "name": name, "to": self._status(name)}
                    for name, (_, sid) in JIRA_STATUSES.items()
                    if name != issue["fields"]["status"]["name"]
                ]
                return JSONResponse({"transitions": ts})
            target = next(
                n for n, (_, sid) in JIRA_STATUSES.items() if sid == data["transition"]["id"]
            )
            issue["fields"]["status"] = self._status(target)
            return Response(status_code=204)
        if method == "GET":
            return JSONResponse(issue)
        for name, value in data.get("fields", {}).items():
            issue["fields"][name] = value
        return Response(status_code=204)

    # -- the tracker side ---------------------------------------------------------------
    def by_label(self, label: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if label in i["fields"]["labels"]]

    def edit(
        self, key: str, *, status: str | None = None, summary: str | None = None
    ) -> dict[str, Any]:
        issue = self.issues[key]
        if status:
            issue["fields"]["status"] = self._status(status)
        if summary:
            issue["fields"]["summary"] = summary
        return issue

    async def send_webhook(
        self,
        url: str,
        secret: str | None,
        key: str,
        *,
        identifier: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        body = {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "issue": self.issues[key],
            "changelog": {"id": "1", "items": []},
        }
        raw = json.dumps(body).encode()
        headers = {"X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4())}
        if signature is not None:
            headers["X-Hub-Signature"] = signature
        elif secret:
            headers["X-Hub-Signature"] = sign(secret, raw)
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                url, content=raw, headers={"content-type": "application/json", **headers}
            )


class FakeGitHub(FakeVendor):
    """GitHub issues of one repository."""

    vendor = "github"
    spec = GITHUB_SPEC
    server_url = "https://api.github.com"

    def __init__(self, token: str = "ghp_faketoken0001", repository: str = "acme/app") -> None:  # noqa: S107
        super().__init__(token)
        self.repository = repository
        self.issues: dict[int, dict[str, Any]] = {}
        self.checks: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)

    def _issue(self, n: int, data: dict[str, Any]) -> dict[str, Any]:
        owner, repo = self.repository.split("/")
        return {
            "id": 1000 + n,
            "node_id": f"I_{n}",
            "number": n,
            "url": f"https://api.github.com/repos/{owner}/{repo}/issues/{n}",
            "html_url": f"https://github.com/{owner}/{repo}/issues/{n}",
            "title": data["title"],
            "body": data.get("body"),
            "state": "open",
            "labels": [{"id": i, "name": name} for i, name in enumerate(data.get("labels", []))],
            "assignee": None,
            "user": {"login": "musubi-bot", "id": 1},
        }

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        base = f"/repos/{self.repository}/issues"
        if path == f"/repos/{self.repository}/check-runs" and method == "POST":
            run = {**data, "id": len(self.checks) + 1}
            run["html_url"] = f"https://github.com/{self.repository}/runs/{run['id']}"
            self.checks.append(run)
            return JSONResponse(run, 201)
        if path == base and method == "POST":
            n = next(self._numbers)
            self.issues[n] = self._issue(n, data)
            return JSONResponse(self.issues[n], 201)
        if path == base and method == "GET":
            labels = set(filter(None, query.get("labels", "").split(",")))
            state = query.get("state", "open")
            found = [
                i
                for i in self.issues.values()
                if labels <= {lb["name"] for lb in i["labels"]} and state in ("all", i["state"])
            ]
            return JSONResponse(found)
        m = re.fullmatch(rf"{base}/(\d+)", path)
        if m is None or int(m.group(1)) not in self.issues:
            return JSONResponse({"message": "Not Found"}, 404)
        issue = self.issues[int(m.group(1))]
        if method == "PATCH":
            for name in ("title", "body", "state"):
                if name in data:
                    issue[name] = data[name]
            if "labels" in data:
                issue["labels"] = [{"id": i, "name": n} for i, n in enumerate(data["labels"])]
        return JSONResponse(issue)

    def by_label(self, label: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if label in {lb["name"] for lb in i["labels"]}]

    def edit(
        self, number: int, *, state: str | None = None, title: str | None = None
    ) -> dict[str, Any]:
        issue = self.issues[number]
        if state:
            issue["state"] = state
        if title:
            issue["title"] = title
        return issue

    async def send_webhook(
        self,
        url: str,
        secret: str | None,
        number: int,
        action: str,
        *,
        delivery: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        _owner, repo = self.repository.split("/")
        body = {
            "action": action,
            "issue": self.issues[number],
            "repository": {"id": 1, "name": repo, "full_name": self.repository},
            "sender": {"login": "octocat", "id": 2},
        }
        raw = json.dumps(body).encode()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "User-Agent": "GitHub-Hookshot/abc123",
        }
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        elif secret:
            headers["X-Hub-Signature-256"] = sign(secret, raw)
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                url, content=raw, headers={"content-type": "application/json", **headers}
            )


# GitLab REST v4 Issues, by its documentation (GitLab publishes no OpenAPI description of
# these endpoints): the parameters each endpoint accepts, and their types.
GITLAB_PARAMS = {
    "POST": {"title": str, "description": str, "labels": str, "assignee_ids": list},
    "PUT": {
        "title": str,
        "description": str,
        "labels": str,
        "add_labels": str,
        "remove_labels": str,
        "state_event": str,
        "assignee_ids": list,
    },
    "GET": {"labels": str, "state": str, "per_page": str, "page": str, "fields": str},
}


class FakeGitLab(FakeVendor):
    """GitLab issues of one project, addressed by its URL-encoded path."""

    vendor = "gitlab"

    def __init__(self, token: str = "glpat-fake-0001", project: str = "acme/app") -> None:  # noqa: S107
        super().__init__(token)
        self.project = project
        self.issues: dict[int, dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self._iids = itertools.count(1)

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("private-token") == self.token

    def _validate(self, request: Request, body: bytes) -> str | None:
        from urllib.parse import quote

        raw = request.scope["raw_path"].decode()
        statuses = f"/api/v4/projects/{quote(self.project, safe='')}/statuses/"
        if raw.startswith(statuses):  # POST /projects/:id/statuses/:sha (Commits API)
            given = json.loads(body or b"{}")
            allowed = {
                "state",
                "ref",
                "name",
                "context",
                "target_url",
                "description",
                "coverage",
                "pipeline_id",
            }
            unknown = set(given) - allowed
            if unknown or given.get("state") not in (
                "pending",
                "running",
                "success",
                "failed",
                "canceled",
                "skipped",
            ):
                return f"POST statuses: {sorted(unknown)} / state {given.get('state')!r}"
            return None
        prefix = f"/api/v4/projects/{quote(self.project, safe='')}/issues"
        if not raw.startswith(prefix):
            return f"{raw}: not {prefix} (the project path must be URL-encoded)"
        allowed = GITLAB_PARAMS.get(request.method, {})
        given = dict(request.query_params) if request.method == "GET" else json.loads(body or b"{}")
        for name, value in given.items():
            if name not in allowed or not isinstance(value, allowed[name]):
                return f"{request.method} {request.url.path}: parameter {name}={value!r}"
        if request.method == "POST" and not given.get("title"):
            return "POST issues: title is required"
        if given.get("state_event") not in (None, "close", "reopen"):
            return f"state_event {given['state_event']!r}"
        if request.method == "GET" and given.get("state") not in (None, "opened", "closed", "all"):
            return f"state {given['state']!r}"
        return None

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        base = f"/api/v4/projects/{self.project}/issues"  # the path as decoded
        if path.startswith(f"/api/v4/projects/{self.project}/statuses/") and method == "POST":
            status = {**data, "id": len(self.statuses) + 1, "sha": path.rsplit("/", 1)[1]}
            self.statuses.append(status)
            return JSONResponse(status, 201)
        if path == base and method == "POST":
            iid = next(self._iids)
            self.issues[iid] = {
                "id": 5000 + iid,
                "iid": iid,
                "project_id": 42,
                "title": data["title"],
                "description": data.get("description"),
                "state": "opened",
                "labels": [x for x in data.get("labels", "").split(",") if x],
                "assignee": None,
                "web_url": f"https://gitlab.example/{self.project}/-/issues/{iid}",
            }
            return JSONResponse(self.issues[iid], 201)
        if path == base and method == "GET":
            labels = set(filter(None, query.get("labels", "").split(",")))
            state = query.get("state", "all")
            found = [
                i
                for i in self.issues.values()
                if labels <= set(i["labels"]) and state in ("all", i["state"])
            ]
            return JSONResponse(found)
        m = re.fullmatch(rf"{re.escape(base)}/(\d+)", path)
        if m is None or int(m.group(1)) not in self.issues:
            return JSONResponse({"message": "404 Not found"}, 404)
        issue = self.issues[int(m.group(1))]
        if method == "PUT":
            for name in ("title", "description"):
                if name in data:
                    issue[name] = data[name]
            if "state_event" in data:
                issue["state"] = "closed" if data["state_event"] == "close" else "opened"
            if "add_labels" in data:
                issue["labels"] += [x for x in data["add_labels"].split(",") if x]
        return JSONResponse(issue)

    def by_label(self, label: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if label in i["labels"]]

    def edit(
        self, iid: int, *, state: str | None = None, title: str | None = None
    ) -> dict[str, Any]:
        issue = self.issues[iid]
        if state:
            issue["state"] = state
        if title:
            issue["title"] = title
        return issue

    async def send_webhook(
        self, url: str, secret: str | None, iid: int, action: str, *, delivery: str | None = None
    ) -> httpx.Response:
        issue = self.issues[iid]
        body = {
            "object_kind": "issue",
            "event_type": "issue",
            "user": {"id": 1, "username": "root"},
            "project": {"id": 42, "path_with_namespace": self.project},
            "object_attributes": {
                "id": issue["id"],
                "iid": iid,
                "title": issue["title"],
                "description": issue["description"],
                "state": issue["state"],
                "action": action,
                "url": issue["web_url"],
            },
            "labels": [{"id": n, "title": t} for n, t in enumerate(issue["labels"])],
            "assignees": [],
        }
        headers = {
            "X-Gitlab-Event": "Issue Hook",
            "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        }
        if secret:
            headers["X-Gitlab-Token"] = secret
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(url, json=body, headers=headers)


ADO_SPEC = SPECS / "azure-devops" / "wit_7.1_workItemTracking.trimmed.json"


class FakeAzureBoards(FakeVendor):
    """Azure DevOps work items of one project. The description is Swagger 2.0, which
    openapi-core does not read: the path and method are matched against its ``paths``,
    ``api-version`` and the JSON Patch content type checked, and the bodies validated with
    jsonschema against its ``JsonPatchOperation`` and ``Wiql`` definitions."""

    vendor = "azure_devops"

    def __init__(
        self,
        token: str = "ado-pat-0001",  # noqa: S107 - a fake's
        org: str = "acme",
        project: str = "Shop",
    ) -> None:
        super().__init__(token)
        self.org, self.project = org, project
        self.items: dict[int, dict[str, Any]] = {}
        self.issues = self.items  # the contract's name
        self._ids = itertools.count(1)
        spec = json.loads(ADO_SPEC.read_text())
        self.paths = spec["paths"]
        self.definitions = spec["definitions"]
        # The description is generated from C#: JsonPatchOperation.value is .NET's `object`
        # (any JSON value: the service takes strings for System.Title), written "type:
        # object". Every other constraint of the operation stays.
        self.definitions["JsonPatchOperation"]["properties"]["value"].pop("type", None)

    def _authorised(self, request: Request) -> bool:
        import base64

        return (
            request.headers.get("authorization")
            == "Basic " + base64.b64encode(f":{self.token}".encode()).decode()
        )

    def _validate(self, request: Request, body: bytes) -> str | None:
        import jsonschema

        raw = request.scope["raw_path"].decode()
        method = request.method.lower()
        for template, ops in self.paths.items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, raw) and method in ops:
                break
        else:
            return f"{request.method} {raw}: no such operation in the description"
        if request.query_params.get("api-version") != "7.1":
            return f"{raw}: api-version must be 7.1"
        data = json.loads(body) if body else None
        if template.endswith("/wiql"):
            schema: dict[str, Any] = {"$ref": "#/definitions/Wiql"}
        elif method in ("post", "patch"):
            if (
                request.headers.get("content-type", "").split(";")[0]
                != "application/json-patch+json"
            ):
                return f"{raw}: JSON Patch needs content type application/json-patch+json"
            schema = {"type": "array", "items": {"$ref": "#/definitions/JsonPatchOperation"}}
        else:
            return None
        try:
            jsonschema.validate(data, {**schema, "definitions": self.definitions})
        except jsonschema.ValidationError as exc:
            return f"{raw}: {exc.message}"
        return None

    def _item(self, n: int) -> dict[str, Any]:
        item = self.items[n]
        return {
            **item,
            "_links": {
                "html": {
                    "href": f"https://dev.azure.com/{self.org}/{self.project}/_workitems/edit/{n}"
                }
            },
        }

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        root = f"/{self.org}/{self.project}"
        if method == "POST" and path.endswith("/_apis/wit/wiql"):
            m = re.search(r"CONTAINS '([^']+)'", data["query"])
            found = [
                {"id": n}
                for n, i in self.items.items()
                if m
                and m.group(1) in [t.strip() for t in i["fields"].get("System.Tags", "").split(";")]
            ]
            return JSONResponse({"queryType": "flat", "workItems": found})
        if method == "POST" and path.startswith(f"{root}/_apis/wit/workitems/$"):
            n = next(self._ids)
            self.items[n] = {"id": n, "rev": 1, "fields": {"System.State": "New"}}
            self._apply(n, data)
            return JSONResponse(self._item(n))
        m = re.fullmatch(rf"{re.escape(root)}/_apis/wit/workitems/(\d+)", path)
        if m is None or int(m.group(1)) not in self.items:
            return JSONResponse({"message": "TF401232: Work item does not exist"}, 404)
        n = int(m.group(1))
        if method == "PATCH":
            self._apply(n, data)
        return JSONResponse(self._item(n))

    def _apply(self, n: int, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            self.items[n]["fields"][op["path"].removeprefix("/fields/")] = op["value"]
        self.items[n]["rev"] += 1

    def by_label(self, label: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.items.values()
            if label in [t.strip() for t in i["fields"].get("System.Tags", "").split(";")]
        ]

    def edit(self, n: int, *, state: str | None = None, title: str | None = None) -> dict[str, Any]:
        if state:
            self.items[n]["fields"]["System.State"] = state
        if title:
            self.items[n]["fields"]["System.Title"] = title
        return self.items[n]

    async def send_webhook(
        self,
        url: str,
        secret: str | None,
        n: int,
        action: str = "updated",
        *,
        delivery: str | None = None,
    ) -> httpx.Response:
        import base64

        body = {
            "id": delivery or str(uuid.uuid4()),
            "eventType": f"workitem.{action}",
            "publisherId": "tfs",
            "resource": {"id": 7, "workItemId": n, "revision": self._item(n)},
        }
        headers = {}
        if secret:
            headers["Authorization"] = (
                "Basic " + base64.b64encode(f"musubi:{secret}".encode()).decode()
            )
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(url, json=body, headers=headers)
