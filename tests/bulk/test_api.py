"""Bulk import and export over the API, on SQLite and PostgreSQL.

Each item lands or fails alone (with its line), through the same checks and audit events
as the single routes; exports import back unchanged; key secrets appear once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from musubi.api.app import api_routes, create_app
from musubi.api.deps import declared_permission
from musubi.bulk import KINDS
from musubi.settings import Settings
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api


async def post_csv(client: httpx.AsyncClient, kind: str, text: str) -> Any:
    r = await client.post(f"/v1/bulk/{kind}", content=text, headers={"Content-Type": "text/csv"})
    return ok(r)


def by_line(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["line"]: r for r in report["results"]}


async def events(client: httpx.AsyncClient, action: str) -> list[dict[str, Any]]:
    return list(ok(await client.get("/v1/audit/events", params={"action": action}))["items"])


def test_each_kind_declares_its_own_permission() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    declared = {}
    for route in api_routes(app.routes):
        if route.path.startswith("/v1/bulk/"):
            [perm] = [declared_permission(d.call)[1] for d in route.dependant.dependencies]
            for method in route.methods:
                declared[(method, route.path.removeprefix("/v1/bulk/"))] = perm
    expected = {("POST", k.name): k.write for k in KINDS.values()}
    expected |= {("GET", k.name): k.read for k in KINDS.values()}
    assert declared == expected


async def test_exports_import_back_unchanged(api: Api, owner: httpx.AsyncClient) -> None:
    ok(await owner.post("/v1/teams", json={"name": "core"}), 201)
    await post_csv(owner, "users", "name,display_name,kind\nalice,Alice,human\nci,CI,service\n")
    projects = [{"name": "web", "team": "core", "description": "the shop"}, {"name": "docs"}]
    ok(await owner.post("/v1/bulk/projects", json=projects))
    assignments = [
        {"user": "alice", "role": "developer", "scope": "project", "target": "web"},
        {"user": "ci", "role": "maintainer", "scope": "team", "target": "core"},
    ]
    assert ok(await owner.post("/v1/bulk/assignments", json=assignments))["succeeded"] == 2

    for kind in ("users", "projects", "assignments"):
        for fmt, media in (("csv", "text/csv"), ("json", "application/json")):
            r = await owner.get(f"/v1/bulk/{kind}", params={"format": fmt})
            assert r.status_code == 200 and r.headers["content-type"].startswith(media)
            back = await owner.post(
                f"/v1/bulk/{kind}", content=r.content, headers={"Content-Type": media}
            )
            report = ok(back)
            assert report["total"] >= 2 and report["failed"] == 0, report
            assert {x["status"] for x in report["results"]} == {"unchanged"}, (kind, fmt)

    exported = ok(await owner.get("/v1/bulk/projects"))
    assert exported == {
        "kind": "projects",
        "items": [
            {"name": "docs", "description": "", "team": "", "repo_path": ""},
            {"name": "web", "description": "the shop", "team": "core", "repo_path": ""},
        ],
    }

    # Names, not ids: an export carries over to another tenant.
    _, b_key = await new_tenant(owner, "tenant-b")
    users_csv = (await owner.get("/v1/bulk/users", params={"format": "csv"})).text
    async with api.client(b_key) as b:
        report = await post_csv(b, "users", users_csv)
        assert [x["status"] for x in report["results"]] == ["created", "created", "unchanged"]
        assert (await b.get("/v1/bulk/users", params={"format": "csv"})).text == users_csv


async def test_mixed_user_rows_fail_alone_with_their_line(
    api: Api, owner: httpx.AsyncClient
) -> None:
    text = (
        "email,display_name,kind\n"
        "ann@example.com,Ann,human\n"  # 2
        "not-an-email,Bad,human\n"  # 3
        '"broken,x,human\n'  # 4: malformed CSV
        "ben@example.com,Ben,robot\n"  # 5: unknown kind
        "cat@example.com,Cat,service\n"  # 6
        "dan@example.com,Dan\n"  # 7: a cell short
    )
    report = await post_csv(owner, "users", text)
    assert (report["total"], report["succeeded"], report["failed"]) == (6, 2, 4)
    lines = by_line(report)
    assert lines[2]["status"] == lines[6]["status"] == "created"
    assert lines[3]["field"] == "email" and "not an e-mail address" in lines[3]["error"]
    assert "malformed CSV" in lines[4]["error"]
    assert lines[5]["field"] == "kind"
    assert "expected 3 cells" in lines[7]["error"]
    names = {u["name"] for u in ok(await owner.get("/v1/users"))["items"]}
    assert names == {"owner", "ann@example.com", "cat@example.com"}
    created = {e["target"] for e in await events(owner, "user.create")}
    assert {lines[2]["id"], lines[6]["id"]} <= created  # audited as single creates are

    # Create or update: matched by name; only the given columns change.
    ann_key = ok(await owner.post("/v1/keys", json={"user_id": lines[2]["id"]}), 201)["token"]
    async with api.client(ann_key) as ann:
        ok(await ann.get("/v1/me"))
        again = await post_csv(
            owner,
            "users",
            "name,display_name,disabled,kind\n"
            "ann@example.com,Ann A.,true,human\n"
            "cat@example.com,Cat,false,service\n"
            "cat@example.com,Cat,false,human\n",
        )
        assert [r["status"] for r in again["results"]] == ["updated", "unchanged", "failed"]
        assert again["results"][2]["field"] == "kind"
        assert (await ann.get("/v1/me")).status_code == 401  # disabled at once
    ann_user = ok(await owner.get(f"/v1/users/{lines[2]['id']}"))
    assert (ann_user["display_name"], ann_user["disabled"]) == ("Ann A.", True)
    assert ok(await owner.post("/v1/audit/verify"))["ok"]


async def test_assignments_mixed_rows_and_idempotent(api: Api, owner: httpx.AsyncClient) -> None:
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        b_project = ok(await b.post("/v1/projects", json={"name": "b-secret"}), 201)["id"]
    ok(await owner.post("/v1/projects", json={"name": "web"}), 201)
    await post_csv(owner, "users", "name\nalice\nbob\n")
    text = (
        "user,role,scope,target\n"
        "alice,developer,project,web\n"  # 2
        "alice,nope,tenant,\n"  # 3: unknown role
        f"bob,viewer,project,{b_project}\n"  # 4: another tenant's project
        "zed,viewer,tenant,\n"  # 5: unknown user
        "bob,viewer,tenant,\n"  # 6
        "bob,viewer,team,\n"  # 7: no team named
    )
    first = await post_csv(owner, "assignments", text)
    lines = by_line(first)
    assert [lines[n]["status"] for n in (2, 6)] == ["created", "created"]
    assert lines[3]["field"] == "role" and "no role named 'nope'" in lines[3]["error"]
    assert lines[4]["error"] == f"project {b_project!r} not found"
    assert lines[5]["error"] == "user 'zed' not found"
    assert lines[7]["field"] == "target"
    # another tenant's project is audited as any id not found (here: also user 'zed')
    not_found = {e["target"]: e for e in await events(owner, "access.not_found")}
    assert set(not_found) == {b_project, "zed"}
    assert not_found[b_project]["outcome"] == "denied"

    again = by_line(await post_csv(owner, "assignments", text))
    assert [again[n]["status"] for n in (2, 6)] == ["unchanged", "unchanged"]
    assert again[2]["id"] == lines[2]["id"]
    assert [again[n]["status"] for n in (3, 4, 5, 7)] == ["failed"] * 4
    listed = ok(await owner.get("/v1/role-assignments"))["items"]
    assert len(listed) == 3  # the owner's, and the two above, once each
    assert len(await events(owner, "role.assign")) == 2 + 1  # + the bootstrap owner's


async def test_no_escalation(api: Api, owner: httpx.AsyncClient) -> None:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    t1 = ok(await owner.post("/v1/teams", json={"name": "t1"}), 201)
    maint_id, maint_key = await user_with_role(
        owner, "lead", "maintainer", scope="team", scope_id=t1["id"]
    )
    admin_id, admin_key = await user_with_role(owner, "adm", "admin")
    async with api.client(maint_key) as maint:
        r = await maint.post("/v1/bulk/assignments", json=[{"user": maint_id, "role": "owner"}])
        assert r.status_code == 403, r.text  # a maintainer holds no roles:write at all
        r = await maint.post("/v1/bulk/users", json=[{"name": "x"}])
        assert r.status_code == 403, r.text
        report = ok(
            await maint.post(
                "/v1/bulk/projects", json=[{"name": "p3", "team": "t1"}, {"name": "p4"}]
            )
        )
        assert [x["status"] for x in report["results"]] == ["created", "failed"]
        assert "projects:write" in report["results"][1]["error"]
        report = ok(await maint.post("/v1/bulk/keys", json=[{"user": "lead"}, {"user": "adm"}]))
        assert [x["status"] for x in report["results"]] == ["created", "failed"]
        assert "users:write" in report["results"][1]["error"]
    async with api.client(admin_key) as admin:
        body = [{"user": admin_id, "role": "owner"}, {"user": admin_id, "role": "viewer"}]
        report = ok(await admin.post("/v1/bulk/assignments", json=body))
        assert [x["status"] for x in report["results"]] == ["failed", "created"]
        assert "cannot grant role 'owner'" in report["results"][0]["error"]
        report = ok(await admin.post("/v1/bulk/keys", json=[{"user": owner_id}]))
        assert "permissions you lack" in report["results"][0]["error"]
    roles = {
        (a["user_id"], a["role"]) for a in ok(await owner.get("/v1/role-assignments"))["items"]
    }
    assert (admin_id, "owner") not in roles and (maint_id, "owner") not in roles
    denied = await events(owner, "access.denied")
    assert len(denied) >= 5  # two 403s, and each refused item


async def test_new_keys_secrets_are_shown_once_and_work(api: Api, owner: httpx.AsyncClient) -> None:
    ok(await owner.post("/v1/projects", json={"name": "web"}), 201)
    await post_csv(owner, "users", "name\nalice\n")
    await post_csv(owner, "assignments", "user,role\nalice,developer\n")
    text = (
        "user,name,project,expires_at\n"
        "alice,laptop,web,\n"
        "alice,ci,,2999-01-01T00:00:00Z\n"
        "alice,old,,2001-01-01T00:00:00Z\n"  # in the past
        "alice,bad,,next tuesday\n"
    )
    report = await post_csv(owner, "keys", text)
    lines = by_line(report)
    assert [lines[n]["status"] for n in (2, 3, 4, 5)] == ["created", "created", "failed", "failed"]
    assert lines[4]["field"] == "expires_at" and lines[5]["field"] == "expires_at"
    tokens = [lines[2]["token"], lines[3]["token"]]
    assert all(t.startswith("msk_") for t in tokens)
    alice_id = ok(await owner.get(f"/v1/keys/{lines[2]['id']}"))["user_id"]
    for token in tokens:
        async with api.client(token) as client:
            assert ok(await client.get("/v1/me"))["user_id"] == alice_id

    ok(await owner.delete(f"/v1/keys/{lines[3]['id']}"))  # revoked keys are not exported
    exported = ok(await owner.get("/v1/bulk/keys"))["items"]
    mine = [k for k in exported if k["user"] == "alice"]
    assert mine == [
        {
            "user": "alice",
            "name": "laptop",
            "project": "web",
            "expires_at": "",
            "prefix": tokens[0].split("_")[1],
        }
    ]
    for fmt in ("json", "csv"):
        text = (await owner.get("/v1/bulk/keys", params={"format": fmt})).text
        assert not any(t in text or t.split("_", 2)[2] in text for t in tokens)

    # Create only: importing the export issues a new key for each row, with a new secret.
    again = ok(await owner.post("/v1/bulk/keys", json={"kind": "keys", "items": mine}))
    [result] = again["results"]
    assert result["status"] == "created" and result["token"] not in tokens
    async with api.client(result["token"]) as client:
        ok(await client.get("/v1/me"))


async def test_projects_create_or_update(api: Api, owner: httpx.AsyncClient) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "web"
    repo.mkdir(parents=True)
    ok(await owner.post("/v1/teams", json={"name": "core"}), 201)
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        b_team = ok(await b.post("/v1/teams", json={"name": "b-team"}), 201)["id"]
    body = [
        {"name": "web", "team": "core", "repo_path": "web"},
        {"name": "api", "team": b_team},
        {"name": "ops", "repo_path": "/etc"},
        {"name": "x" * 201},
        {"name": "docs", "colour": "red"},
    ]
    report = ok(await owner.post("/v1/bulk/projects", json=body))
    results = report["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert "line" not in results[0]  # JSON items are numbered by index
    assert [r["status"] for r in results] == ["created"] + ["failed"] * 4
    assert results[1]["error"] == f"team {b_team!r} not found"
    assert results[2]["field"] == "repo_path"
    assert results[3]["field"] == "name"
    assert results[4]["error"] == "colour: unknown column"
    web = ok(await owner.get(f"/v1/projects/{results[0]['id']}"))
    assert web["repo_path"] == "web"  # relative to the tenant's directory

    changes = [
        {"name": "web", "description": "shop"},  # team and repo_path left as they are
        {"name": "web", "description": "shop"},
        {"name": "web", "team": None},
    ]
    report = ok(await owner.post("/v1/bulk/projects", json=changes))
    assert [r["status"] for r in report["results"]] == ["updated", "unchanged", "updated"]
    web = ok(await owner.get(f"/v1/projects/{results[0]['id']}"))
    assert (web["description"], web["team_id"], web["repo_path"]) == (
        "shop",
        None,
        "web",
    )


async def test_limits_bodies_and_permissions(api: Api, owner: httpx.AsyncClient) -> None:
    r = await owner.post("/v1/bulk/users", content=json.dumps([{}] * 10_001))
    assert r.status_code == 413, r.text
    assert "more than 10000 items" in r.json()["error"]["message"]
    r = await owner.post("/v1/bulk/users", content=b"name\nx\n")  # CSV sent as JSON
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    r = await owner.post("/v1/bulk/users", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "content-type"
    r = await owner.get("/v1/bulk/users", params={"format": "xml"})
    assert r.status_code == 422
    assert ok(await owner.get("/v1/users"))["items"][0]["name"] == "owner"  # nothing landed

    _, viewer_key = await user_with_role(owner, "v", "viewer")
    async with api.client(viewer_key) as viewer:
        assert (await viewer.post("/v1/bulk/users", json=[{"name": "x"}])).status_code == 403
        assert [u["name"] for u in ok(await viewer.get("/v1/bulk/users"))["items"]] == [
            "owner",
            "v",
        ]
