"""Finding 15 (access part): what a caller could learn beyond its reach.

- a project-scoped role listed every role assignment of the tenant;
- the tenant's own audit log told whether an id exists in another tenant;
- anonymous callers could enumerate tenant names through the public SSO routes;
- the answer to a key with a known prefix and a wrong secret came ~2 ms faster than to an
  unknown prefix (the unknown one queried the database every time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, select

from musubi.audit.models import AuditEvent
from musubi.context import SYSTEM_TENANT, system_scope
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.security.access_helpers import narrow_world


async def test_project_role_lists_only_its_projects_assignments(
    api: Api, owner: httpx.AsyncClient
) -> None:
    w = await narrow_world(api, owner)
    everyone = ok(await owner.get("/v1/role-assignments"))["items"]
    assert {a["scope"] for a in everyone} == {"tenant", "team", "project"}
    for who in ("project admin", "project key"):
        async with api.client(w.keys[who]) as caller:
            seen = ok(await caller.get("/v1/role-assignments"))["items"]
            exported = ok(await caller.get("/v1/bulk/assignments"))["items"]
        assert seen, who
        assert {(a["scope"], a["scope_id"]) for a in seen} == {("project", w.project_in)}, who
        assert {(a["scope"], a["target"]) for a in exported} == {("project", "p-in")}, who
    async with api.client(w.keys["team admin"]) as caller:
        seen = ok(await caller.get("/v1/role-assignments"))["items"]
    assert {(a["scope"], a["scope_id"]) for a in seen} == {
        ("team", w.team_in),
        ("project", w.project_in),
    }


async def test_audit_log_does_not_tell_whether_an_id_exists_in_another_tenant(
    api: Api, owner: httpx.AsyncClient
) -> None:
    a_project = ok(await owner.post("/v1/projects", json={"name": "a-secret"}), 201)["id"]
    unknown = "prj_00000000deadbeef"
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        for id_ in (a_project, unknown):
            r = await b.get(f"/v1/projects/{id_}")
            assert r.status_code == 404, r.text
        events = ok(await b.get("/v1/audit/events"))["items"]
    probes = [e for e in events if e["target"] in (a_project, unknown)]
    assert len(probes) == 2, events

    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        detail = {k: v for k, v in e["detail"].items() if k != "path"}
        return e["action"], e["outcome"], e["actor"], sorted(detail.items())

    assert shape(probes[0]) == shape(probes[1])
    # the operator still learns of the real cross-tenant attempt, in its own log (written
    # after the answer, so wait for it)
    for _ in range(100):
        rows = await _events(api, "security.cross_tenant")
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [(e.tenant_id, e.target) for e in rows] == [(SYSTEM_TENANT, a_project)]


async def _events(api: Api, action: str) -> list[AuditEvent]:
    with system_scope():
        async with api.state.db.read() as s:
            query = select(AuditEvent).where(AuditEvent.action == action)
            return list((await s.scalars(query)).all())


async def test_bulk_import_audits_another_tenants_id_like_an_unknown_one(
    api: Api, owner: httpx.AsyncClient
) -> None:
    a_project = ok(await owner.post("/v1/projects", json={"name": "a-secret"}), 201)["id"]
    unknown = "prj_00000000deadbeef"
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        me = ok(await b.get("/v1/me"))["user_id"]
        rows = [
            {"user": me, "role": "viewer", "scope": "project", "target": id_}
            for id_ in (a_project, unknown)
        ]
        report = ok(await b.post("/v1/bulk/assignments", json=rows))
        assert report["failed"] == 2, report
        events = ok(await b.get("/v1/audit/events", params={"action": "access.not_found"}))
    by_target = {e["target"]: e for e in events["items"]}
    assert set(by_target) == {a_project, unknown}
    first, second = by_target[a_project], by_target[unknown]
    assert (first["actor"], first["outcome"]) == (second["actor"], second["outcome"])
    assert first["detail"]["message"].replace(a_project, "X") == second["detail"][
        "message"
    ].replace(unknown, "X")
    for _ in range(100):
        rows_ = await _events(api, "security.cross_tenant")
        if rows_:
            break
        await asyncio.sleep(0.05)
    assert [(e.tenant_id, e.target) for e in rows_] == [(SYSTEM_TENANT, a_project)]


async def test_sso_routes_do_not_enumerate_tenant_names(api: Api, owner: httpx.AsyncClient) -> None:
    await new_tenant(owner, "acme-corp")  # exists, has no SSO
    async with api.client() as anonymous:
        for route in ("oidc/login", "oidc/callback", "saml/login", "saml/metadata"):
            answers = []
            for name in ("acme-corp", "no-such-corp"):
                r = await anonymous.get(f"/v1/sso/{name}/{route}")
                body = r.json()["error"]
                answers.append((r.status_code, body["type"], body["message"].replace(name, "X")))
            assert answers[0] == answers[1], (route, answers)


@contextmanager
def _statements(api: Api) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]).split()[0])

    engine = api.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_unknown_key_prefix_costs_what_a_known_one_does(
    api: Api, owner: httpx.AsyncClient
) -> None:
    _, token = await user_with_role(owner, "victim", "viewer")
    prefix = token.split("_")[1]
    known = f"msk_{prefix}_{'x' * 43}"  # a real prefix, a wrong secret
    unknown = f"msk_{'0' * 8}_{'x' * 43}"
    async with api.client() as anonymous:
        work = {}
        for name, key in (("known", known), ("unknown", unknown)):
            headers = {"Authorization": f"Bearer {key}"}
            assert (await anonymous.get("/v1/me", headers=headers)).status_code == 401
            with _statements(api) as seen:  # the second try, once anything is cached
                r = await anonymous.get("/v1/me", headers=headers)
            assert r.status_code == 401
            work[name] = [s for s in seen if s.upper() == "SELECT"]
    assert work["known"] == work["unknown"], work
