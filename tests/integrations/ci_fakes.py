"""Stateful fakes of the CI/CD side of the vendors, served by uvicorn on loopback:

* :class:`FakeAzurePipelines`: Azure Pipelines runs (``pipelines`` area, 7.1), requests
  checked against Microsoft's description (``tests/fixtures/specs/azure-devops/
  pipelines_7.1_pipelines.trimmed.json``): the path and method among its ``paths``,
  ``api-version``, the body against ``RunPipelineParameters`` with jsonschema; every run
  it answers is checked against ``Run`` too. A variable the pipeline does not let be set
  at queue time is refused as Azure refuses it.
* :class:`FakeAzureRepos`: pull request statuses (``git`` area). Its description is not
  among ``../shared/specs``: the body follows the documented ``GitPullRequestStatus``.
* :class:`FakeGitLabCI`: pipeline triggers, pipelines, commit statuses and merge-request
  notes of one project, by GitLab's REST documentation (GitLab publishes no OpenAPI
  description of these): the form fields and parameters each endpoint accepts.

A request that breaks the description is answered 400 and kept in ``violations``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jsonschema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.integrations.fakes import SPECS, FakeVendor

ADO_PIPELINES_SPEC = SPECS / "azure-devops" / "pipelines_7.1_pipelines.trimmed.json"
ADO_RESULTS = {"succeeded", "failed", "canceled"}


def _swagger_operation(paths: dict[str, Any], raw: str, method: str) -> str | None:
    for template, ops in paths.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, raw) and method in ops:
            return str(template)
    return None


class _AdoBasic(FakeVendor):
    def _authorised(self, request: Request) -> bool:
        basic = base64.b64encode(f":{self.token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {basic}"


class FakeAzurePipelines(_AdoBasic):
    vendor = "azure_pipelines"

    def __init__(
        self,
        token: str = "ado-pat-pipelines-01",  # noqa: S107 - a fake's
        org: str = "acme",
        project: str = "Shop",
    ) -> None:
        super().__init__(token)
        self.org, self.project = org, project
        self.pipelines: dict[int, dict[str, Any]] = {
            12: {"name": "gates", "settable": {"MUSUBI_RUN", "TARGET"}}
        }
        self.runs: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(300)
        spec = json.loads(Path(ADO_PIPELINES_SPEC).read_text())
        self.paths, self.definitions = spec["paths"], spec["definitions"]

    def _schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/definitions/{name}", "definitions": self.definitions}

    def _validate(self, request: Request, body: bytes) -> str | None:
        raw = request.scope["raw_path"].decode()
        template = _swagger_operation(self.paths, raw, request.method.lower())
        if template is None:
            return f"{request.method} {raw}: no such operation in the description"
        if request.query_params.get("api-version") != "7.1":
            return f"{raw}: api-version must be 7.1"
        if not all(p.isdigit() for p in re.findall(r"/(?:pipelines|runs)/([^/]+)", raw)):
            return f"{raw}: pipelineId and runId are int32"
        if request.method == "POST":
            try:
                jsonschema.validate(
                    json.loads(body or b"null"), self._schema("RunPipelineParameters")
                )
            except (ValueError, jsonschema.ValidationError) as exc:
                return f"{raw}: {getattr(exc, 'message', exc)}"
        return None

    def _run(self, n: int) -> dict[str, Any]:
        run = self.runs[n]
        web = f"https://dev.azure.com/{self.org}/{self.project}/_build/results?buildId={n}"
        out = {
            "id": n,
            "name": f"20261207.{n}",
            "state": run["state"],
            "createdDate": "2026-12-07T16:00:00Z",
            "pipeline": {"id": run["pipeline"], "name": self.pipelines[run["pipeline"]]["name"]},
            "url": f"https://dev.azure.com/{self.org}/_apis/pipelines/{run['pipeline']}/runs/{n}",
            "_links": {"web": {"href": web}},
            "resources": {"repositories": {"self": {"refName": run["ref"]}}},
            "variables": {k: {"value": v} for k, v in run["variables"].items()},
        }
        if run["state"] == "completed":
            out |= {"result": run["result"], "finishedDate": "2026-12-07T16:05:00Z"}
        jsonschema.validate(out, self._schema("Run"))  # the fake answers as described
        return out

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        m = re.fullmatch(rf"/{self.org}/{self.project}/_apis/pipelines/(\d+)/runs(?:/(\d+))?", path)
        if m is None or int(m.group(1)) not in self.pipelines:
            return JSONResponse({"message": f"Pipeline with id {m and m.group(1)} not found"}, 404)
        pid = int(m.group(1))
        if method == "GET":
            n = int(m.group(2))
            if n not in self.runs or self.runs[n]["pipeline"] != pid:
                return JSONResponse({"message": f"Run {n} not found"}, 404)
            return JSONResponse(self._run(n))
        variables = {k: v["value"] for k, v in (data.get("variables") or {}).items()}
        refused = sorted(set(variables) - self.pipelines[pid]["settable"])
        if refused:
            message = (
                "Unable to complete the operation because the following variables cannot be "
                f"set at queue time: {', '.join(refused)}"
            )
            return JSONResponse({"message": message, "typeKey": "PipelineValidationException"}, 400)
        ref = data.get("resources", {}).get("repositories", {}).get("self", {}).get("refName")
        n = next(self._ids)
        self.runs[n] = {
            "pipeline": pid,
            "state": "inProgress",
            "ref": ref or "refs/heads/main",
            "variables": variables,
        }
        return JSONResponse(self._run(n))

    def finish(self, external_id: str, result: str) -> None:
        assert result in ADO_RESULTS
        self.runs[int(external_id)] |= {"state": "completed", "result": result}

    def held(self, external_id: str) -> dict[str, Any]:
        run = self.runs[int(external_id)]
        return {"ref": run["ref"], "variables": run["variables"]}


# GitLab's documented statuses (Pipelines API) and what each common result is there.
GITLAB_FINAL = {"succeeded": "success", "failed": "failed", "canceled": "canceled"}
GITLAB_STATUS_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


class FakeGitLabCI(FakeVendor):
    """One GitLab project: pipeline triggers and pipelines, commit statuses, and the notes
    of its merge requests."""

    vendor = "gitlab"

    def __init__(
        self,
        token: str = "glpat-ci-read-0001",  # noqa: S107 - a fake's
        trigger_token: str = "glptt-trigger-0001",  # noqa: S107
        project: str = "acme/app",
    ) -> None:
        super().__init__(token)
        self.trigger_token, self.project = trigger_token, project
        self.refs = {"main", "release"}
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.merge_requests = {7}
        self.notes: dict[int, list[dict[str, Any]]] = {7: []}
        self._ids = itertools.count(9001)
        self._note_ids = itertools.count(501)
        self.prefix = f"/api/v4/projects/{quote(project, safe='')}"

    def _answer(self, request: Request, body: bytes) -> Response:
        raw = request.scope["raw_path"].decode().split("?")[0]
        if raw == f"{self.prefix}/trigger/pipeline" and request.method == "POST":
            return self._trigger(request, body)
        return super()._answer(request, body)

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("private-token") == self.token

    def _pipeline(self, n: int) -> dict[str, Any]:
        p = self.pipelines[n]
        return {
            "id": n,
            "iid": n - 9000,
            "project_id": 42,
            "sha": "a" * 40,
            "ref": p["ref"],
            "status": p["status"],
            "source": "trigger",
            "web_url": f"https://gitlab.example/{self.project}/-/pipelines/{n}",
            "created_at": "2026-12-07T16:00:00.000Z",
            "updated_at": "2026-12-07T16:00:00.000Z",
        }

    def _trigger(self, request: Request, body: bytes) -> Response:
        """``POST /projects/:id/trigger/pipeline``: form fields ``token``, ``ref``,
        ``variables[NAME]``, ``inputs[NAME]``; an unknown token is a 404, as GitLab answers."""
        if self.faults.statuses:
            status = self.faults.statuses.pop(0)
            return JSONResponse({"message": f"injected {status}"}, status)
        ctype = request.headers.get("content-type", "").split(";")[0]
        if ctype != "application/x-www-form-urlencoded":
            problem = f"trigger: form fields expected, got {ctype!r}"
            self.violations.append(problem)
            return JSONResponse({"message": problem}, 400)
        form = parse_qsl(body.decode(), keep_blank_values=True)
        fields = dict(form)
        unknown = [
            k
            for k, _ in form
            if k not in ("token", "ref") and not re.fullmatch(r"(variables|inputs)\[[^\]]+\]", k)
        ]
        if unknown or not fields.get("ref") or "token" not in fields:
            problem = f"trigger: fields {unknown} / ref {fields.get('ref')!r}"
            self.violations.append(problem)
            return JSONResponse({"error": problem}, 400)
        if fields["token"] != self.trigger_token:
            return JSONResponse({"message": "404 Not Found"}, 404)
        if fields["ref"] not in self.refs:
            return JSONResponse({"message": {"base": ["Reference not found"]}}, 400)
        n = next(self._ids)
        variables = {k[10:-1]: v for k, v in form if k.startswith("variables[")}
        self.pipelines[n] = {"ref": fields["ref"], "status": "created", "variables": variables}
        return JSONResponse(self._pipeline(n), 201)

    def _validate(self, request: Request, body: bytes) -> str | None:
        raw = request.scope["raw_path"].decode()
        if not raw.startswith(self.prefix + "/"):
            return f"{raw}: not {self.prefix} (the project path must be URL-encoded)"
        rest, method = raw[len(self.prefix) :], request.method
        given = json.loads(body or b"{}") if method in ("POST", "PUT") else {}
        if re.fullmatch(r"/pipelines/\d+", rest) and method == "GET":
            return None
        if re.fullmatch(r"/statuses/[0-9a-f]{40}", rest) and method == "POST":
            allowed = {"state", "ref", "name", "context", "target_url", "description", "coverage"}
            if set(given) - allowed or given.get("state") not in GITLAB_STATUS_STATES:
                return f"POST statuses: {sorted(given)}"
            return None
        if re.fullmatch(r"/merge_requests/\d+/notes", rest.split("?")[0]) and method == "GET":
            allowed = {"sort", "order_by", "per_page", "page"}
            unknown = set(request.query_params) - allowed
            return f"GET notes: {sorted(unknown)}" if unknown else None
        if re.fullmatch(r"/merge_requests/\d+/notes(/\d+)?", rest) and method in ("POST", "PUT"):
            allowed = {"body", "internal", "created_at", "merge_request_diff_head_sha"}
            if method == "PUT":
                allowed = {"body"}
            if set(given) - allowed or not isinstance(given.get("body"), str) or not given["body"]:
                return f"{method} notes: {sorted(given)}"
            if len(given["body"]) > 1_000_000:
                return "notes: body over 1,000,000 characters"
            return None
        return f"{method} {raw}: not an endpoint of this fake"

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        rest = path[len(f"/api/v4/projects/{self.project}") :]
        m = re.fullmatch(r"/pipelines/(\d+)", rest)
        if m:
            n = int(m.group(1))
            if n not in self.pipelines:
                return JSONResponse({"message": "404 Not found"}, 404)
            return JSONResponse(self._pipeline(n))
        m = re.fullmatch(r"/statuses/([0-9a-f]{40})", rest)
        if m:
            status = {**data, "id": len(self.statuses) + 1, "sha": m.group(1)}
            self.statuses.append(status)
            return JSONResponse(status, 201)
        m = re.fullmatch(r"/merge_requests/(\d+)/notes(?:/(\d+))?", rest)
        if m is None or int(m.group(1)) not in self.merge_requests:
            return JSONResponse({"message": "404 Not found"}, 404)
        notes = self.notes[int(m.group(1))]
        if method == "GET":
            return JSONResponse(notes)
        if method == "PUT":
            found = [n for n in notes if n["id"] == int(m.group(2) or 0)]
            if not found:
                return JSONResponse({"message": "404 Note Not Found"}, 404)
            found[0]["body"] = data["body"]
            return JSONResponse(found[0])
        note = {
            "id": next(self._note_ids),
            "body": data["body"],
            "author": {"id": 1, "username": "musubi-bot"},
            "noteable_type": "MergeRequest",
            "noteable_iid": int(m.group(1)),
            "system": False,
        }
        notes.append(note)
        return JSONResponse(note, 201)

    def advance(self, external_id: str, status: str) -> None:
        self.pipelines[int(external_id)]["status"] = status

    def finish(self, external_id: str, result: str) -> None:
        self.advance(external_id, GITLAB_FINAL[result])

    def held(self, external_id: str) -> dict[str, Any]:
        p = self.pipelines[int(external_id)]
        return {"ref": p["ref"], "variables": p["variables"]}


# Documented GitPullRequestStatus states and the fields of the create call.
ADO_PR_STATES = {"error", "failed", "notApplicable", "notSet", "pending", "succeeded"}
ADO_PR_FIELDS = {"state", "description", "context", "targetUrl", "iterationId", "properties"}


class FakeAzureRepos(_AdoBasic):
    """Pull request statuses of one Azure Repos repository."""

    vendor = "azure_devops"

    def __init__(
        self,
        token: str = "ado-pat-repos-0001",  # noqa: S107 - a fake's
        org: str = "acme",
        project: str = "Shop",
        repository: str = "app",
    ) -> None:
        super().__init__(token)
        self.org, self.project, self.repository = org, project, repository
        self.pull_requests = {42}
        self.statuses: list[dict[str, Any]] = []

    def _validate(self, request: Request, body: bytes) -> str | None:
        raw = request.scope["raw_path"].decode()
        want = (
            rf"/{self.org}/{quote(self.project)}/_apis/git/repositories/"
            rf"{quote(self.repository)}/pullRequests/\d+/statuses"
        )
        if request.method != "POST" or not re.fullmatch(want, raw):
            return f"{request.method} {raw}: not POST …/pullRequests/{{id}}/statuses"
        if request.query_params.get("api-version") != "7.1":
            return f"{raw}: api-version must be 7.1"
        given = json.loads(body or b"{}")
        context = given.get("context")
        if (
            set(given) - ADO_PR_FIELDS
            or given.get("state") not in ADO_PR_STATES
            or not isinstance(context, dict)
            or set(context) - {"name", "genre"}
            or not context.get("name")
        ):
            return f"POST statuses: {given}"
        return None

    def route(self, method: str, path: str, query: dict[str, str], data: Any) -> Response:
        pr = int(path.split("/pullRequests/")[1].split("/")[0])
        if pr not in self.pull_requests:
            return JSONResponse({"message": f"TF401180: pull request {pr} not found"}, 404)
        status = {**data, "id": len(self.statuses) + 1, "pullRequest": pr}
        self.statuses.append(status)
        return JSONResponse(status, 200)
