"""The route table against narrower principals: every route, called on something outside
the caller's scope, refuses.

Generated from the app's routes and their declared scope (``require(perm, scope)``):

- a ``tenant`` route refuses a project key or a team/project role outright (403), even
  one holding ``admin`` there (or, for the project key, on the whole tenant);
- a ``team``/``project``/``own`` route, given an object outside the caller's reach
  (the other team, the other project, the owner's user, key, assignment…), refuses it
  (403 or 404); a list answers without any of those objects in it; a bulk import
  answers a report in which every such item failed.

A new route needs nothing here unless it takes a body (add it to ``BODIES``) or only ever
acts as the caller itself (``SELF_ONLY``); the test says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from musubi.api.app import PUBLIC_PATHS, api_routes, create_app
from musubi.api.deps import declared_scope
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api
from tests.security.access_helpers import NarrowWorld, narrow_world

NARROW = ["project key", "team admin", "project admin"]

# Routes that act only as the caller (a model call, "who am I"): nothing outside to aim at.
SELF_ONLY = {
    ("GET", "/v1/me"),
    ("POST", "/v1/sso/logout"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("POST", "/v1/musubi/estimate"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/gateway/catalogue"),
    ("POST", "/v1/files"),  # an upload is the caller's own (in its own project)
}


@dataclass
class Outside:
    """Objects the narrow principals must not reach, by path parameter name."""

    ids: dict[str, str]
    world: NarrowWorld


def _bodies(ids: dict[str, str]) -> dict[tuple[str, str], Any]:
    """A body per route, aimed at the objects outside (``ids``, by path parameter name)."""
    return {
        ("POST", "/v1/projects"): {"name": "x", "team_id": ids["team_id"]},
        ("PATCH", "/v1/projects/{project_id}"): {"description": "x"},
        ("PATCH", "/v1/teams/{team_id}"): {"description": "x"},
        ("POST", "/v1/keys"): {"user_id": ids["user_id"]},
        ("POST", "/v1/role-assignments"): {
            "user_id": ids["user_id"],
            "role": "viewer",
            "scope": "project",
            "scope_id": ids["project_id"],
        },
        ("POST", "/v1/projects/{project_id}/knowledge/search"): {"query": "x"},
        ("POST", "/v1/projects/{project_id}/runs/estimate"): {"idea": "x"},
        ("POST", "/v1/projects/{project_id}/runs"): {"idea": "x"},
        ("POST", "/v1/projects/{project_id}/knowledge/context"): {"task": "x"},
        ("POST", "/v1/projects/{project_id}/sdd/trace/recover"): {"mode": "ranked"},
        ("POST", "/v1/batches"): {
            "input_file_id": ids["file_id"],
            "endpoint": "/v1/chat/completions",
        },
        ("POST", "/v1/fine_tuning/jobs"): {"model": "x", "training_file": ids["file_id"]},
        ("POST", "/v1/bulk/keys"): [{"user": ids["user_id"]}],
        ("POST", "/v1/bulk/projects"): [{"name": "x", "team": ids["team_id"]}],
        ("PUT", "/v1/projects/{project_id}/integrations/{kind}"): {
            "target": "PROJ",
            "base_url": "https://example.atlassian.net",
            "token": "t-outside-0001",
        },
        ("POST", "/v1/projects/{project_id}/integrations/{kind}/conflicts/{item_id}/resolve"): {
            "keep": "local"
        },
        ("POST", "/v1/projects/{project_id}/integrations/{kind}/notify"): {
            "kind": "run_finished",
            "title": "x",
        },
        ("PUT", "/v1/projects/{project_id}/pipelines/{name}"): {
            "kind": "gitlab",
            "target": "acme/app",
            "token": "t-outside-0002",
            "trigger_token": "t-outside-0003",
        },
        ("POST", "/v1/projects/{project_id}/pipelines/{name}/runs"): {"ref": "main"},
    }


def _routes() -> list[tuple[str, str, str]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    out = []
    for route in api_routes(app.routes):
        if route.path in PUBLIC_PATHS:
            continue
        [scope] = [s for d in route.dependant.dependencies if (s := declared_scope(d.call))]
        out.extend((m, route.path, scope) for m in sorted(route.methods))
    return out


async def _outside(api: Api, owner: httpx.AsyncClient) -> Outside:
    w = await narrow_world(api, owner)
    me = ok(await owner.get("/v1/me"))
    [owner_role] = [
        a
        for a in ok(await owner.get("/v1/role-assignments", params={"user_id": w.owner_id}))[
            "items"
        ]
        if a["role"] == "owner"
    ]
    role = ok(await owner.post("/v1/roles", json={"name": "c", "permissions": ["teams:read"]}), 201)
    quota = {"scope": "project", "scope_id": w.project_out, "limits": {"tokens_per_day": 9}}
    policy = ok(await owner.put("/v1/quotas", json=quota))
    idp = {"name": "corp", "issuer": "https://idp.example.com", "client_id": "m"}
    idp_id = ok(await owner.post("/v1/sso/idps", json={**idp, "client_secret": "s"}), 201)["id"]
    credential = {"provider": "openai", "api_key": "sk-owner-secret-0001", "base_url": ""}
    ok(await owner.put("/v1/gateway/providers/openai", json=credential))
    line = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    files = {"file": ("a.jsonl", line)}
    file_id = ok(await owner.post("/v1/files", files=files, data={"purpose": "batch"}))["id"]
    ids = {
        "tenant_id": me["tenant_id"],
        "team_id": w.team_out,
        "project_id": w.project_out,
        "user_id": w.owner_id,
        "key_id": me["key_id"],
        "role_id": role["id"],
        "assignment_id": owner_role["id"],
        "policy_id": policy["id"],
        "idp_id": idp_id,
        "session_id": "ses_0000000000000000",
        "name": "openai",
        "group_id": "grp_0000000000000000",
        "file_id": file_id,
        "batch_id": "batch_0000000000000000",
        "job_id": "ftjob_0000000000000000",  # no job is made here (it would need a model)
        "run_id": "run_0000000000000000",  # no run is started here (it would call models)
        "kind": "jira",
        "item_id": "REQ-X-001",
        "run": "ppr_0000000000000000",  # a pipeline run (none is triggered here)
    }
    return Outside(ids, w)


def _leaks(o: Outside, text: str) -> list[str]:
    mine = {
        "tenant_id",
        "session_id",
        "group_id",
        "batch_id",
        "run_id",
        "name",
        "kind",
        "item_id",
        "job_id",
        "run",
    }  # not secrets here
    return [k for k, v in o.ids.items() if k not in mine and v in text]


async def _problem(
    client: httpx.AsyncClient, o: Outside, method: str, path: str, scope: str
) -> str | None:
    """What is wrong with this route's answer to a narrow caller (None: it refused)."""
    url = re.sub(r"\{([^}]+)\}", lambda m: o.ids[m.group(1)], path)
    body = _bodies(o.ids).get((method, path))
    if (method, path) == ("POST", "/v1/files"):
        files = {"file": ("b.jsonl", b"{}\n")}
        r = await client.post(url, files=files, data={"purpose": "batch"})
    else:
        r = await client.request(method, url, json=body if body is not None else {})
    where = f"{method} {path} ({scope}): {r.status_code} {r.text[:200]}"
    if r.status_code >= 500:
        return where
    if scope == "tenant":
        return None if r.status_code == 403 else where
    if r.status_code in (403, 404):
        return None
    if (method, path) in SELF_ONLY or method == "GET":
        leaked = _leaks(o, r.text)
        return f"{where} shows {leaked}" if leaked else None
    if path.startswith("/v1/bulk/") and r.status_code == 200:
        report = r.json()
        return None if report["failed"] == report["total"] else where
    return where


def test_every_route_with_a_body_has_one_here() -> None:
    """A route that takes a body and is not tenant-wide needs a body aimed outside."""
    bodies = _bodies(dict.fromkeys(("team_id", "project_id", "user_id", "file_id"), "x"))
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    missing = []
    for route in api_routes(app.routes):
        if route.path in PUBLIC_PATHS or route.dependant.body_params == []:
            continue
        [scope] = [s for d in route.dependant.dependencies if (s := declared_scope(d.call))]
        for method in route.methods:
            key = (method, route.path)
            if scope != "tenant" and key not in bodies and key not in SELF_ONLY:
                missing.append(key)
    assert not missing, f"add a body aimed outside the caller's scope for: {sorted(missing)}"


@pytest.mark.parametrize("who", NARROW)
async def test_narrow_principals_are_refused_outside_their_scope(
    api: Api, owner: httpx.AsyncClient, who: str
) -> None:
    o = await _outside(api, owner)
    problems, checked = [], 0
    async with api.client(o.world.keys[who]) as client:
        for method, path, scope in _routes():
            checked += 1
            problem = await _problem(client, o, method, path, scope)
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)
    assert checked > 90  # the whole route table, not an empty loop
