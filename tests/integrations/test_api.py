"""The configuration API and CLI: secrets write-only and encrypted, bad input named,
another tenant and narrower roles refused, every change audited; conflicts in the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from musubi.context import system_scope
from musubi.integrations.models import Integration
from musubi.integrations.tracker import label_for
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.integrations.fakes import FakeJira
from tests.integrations.test_roundtrip import configure, project_with_specs


async def test_secrets_are_write_only_and_encrypted_and_changes_audited(
    api: Api, owner: httpx.AsyncClient, jira: FakeJira
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    out = await configure(owner, project_id, jira)
    assert out["token_hint"] == "…oken" and jira.token not in json.dumps(out)
    with system_scope():
        async with api.state.db.read() as s:
            stored = await s.scalar(select(Integration.secret))
    assert stored and jira.token not in stored and "whsec" not in stored
    # omitted secrets are kept
    again = ok(
        await owner.put(
            f"/v1/projects/{project_id}/integrations/jira",
            json={"target": "PROJ", "base_url": jira.url},
        )
    )
    assert again["secrets_set"] == ["email", "token", "webhook_secret"]
    events = ok(await owner.get("/v1/audit/events", params={"action": "integration.*"}))
    assert [e["action"] for e in events["items"]] == ["integration.set", "integration.set"]
    listed = ok(await owner.get(f"/v1/projects/{project_id}/integrations"))["items"]
    assert [i["kind"] for i in listed] == ["jira"]
    ok(await owner.delete(f"/v1/projects/{project_id}/integrations/jira"))
    assert ok(await owner.get(f"/v1/projects/{project_id}/integrations"))["items"] == []


async def test_bad_input_is_named(api: Api, owner: httpx.AsyncClient) -> None:
    project_id, _ = await project_with_specs(api, owner)
    base = f"/v1/projects/{project_id}/integrations"
    cases = [
        ("trello", {"target": "X", "token": "t"}, "kind"),
        ("github", {"target": "no-slash", "token": "t"}, "owner/name"),
        ("jira", {"target": "PROJ", "token": "t"}, "base_url"),
        ("jira", {"target": "PROJ", "base_url": "https://x.atlassian.net"}, "token"),
        (
            "jira",
            {"target": "PROJ", "token": "t", "base_url": "http://169.254.169.254"},
            "base_url",
        ),
    ]
    for kind, body, named in cases:
        r = await owner.put(f"{base}/{kind}", json=body)
        assert r.status_code in (400, 422), r.text
        assert named in r.text, r.text
    r = await owner.post(f"{base}/jira/sync")
    assert r.status_code == 404 and "no jira integration" in r.text


async def test_another_tenant_and_narrower_roles_are_refused(
    api: Api, owner: httpx.AsyncClient, jira: FakeJira
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    await configure(owner, project_id, jira)
    base = f"/v1/projects/{project_id}/integrations/jira"
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        for method in ("GET", "DELETE"):
            r = await b.request(method, base)
            assert r.status_code == 404, r.text
        assert (await b.post(base + "/sync")).status_code == 404
        assert (await b.get(base + "/conflicts")).status_code == 404
    _, viewer_key = await user_with_role(owner, "viewer-1", "viewer")
    async with api.client(viewer_key) as viewer:
        assert ok(await viewer.get(base))["kind"] == "jira"  # integrations:read
        r = await viewer.post(base + "/sync")
        assert r.status_code == 403 and "integrations:write" in r.text
        r = await viewer.put(base, json={"target": "PROJ", "base_url": jira.url})
        assert r.status_code == 403
    # a key restricted to another project of the same tenant
    other = ok(await owner.post("/v1/projects", json={"name": "other"}), 201)
    _, narrow = await user_with_role(owner, "admin-2", "admin", project_id=other["id"])
    async with api.client(narrow) as client:
        r = await client.get(base)
        assert r.status_code in (403, 404), r.text
    # and A's integration still answers A
    assert ok(await owner.get(base))["state"] == "ok"


async def test_the_cli_shows_conflicts_and_the_outbox(
    api: Api, owner: httpx.AsyncClient, jira: FakeJira, tmp_path: Path
) -> None:
    """``musubi integrations`` in a subprocess, on the server's database."""
    project_id, root = await project_with_specs(api, owner)
    await configure(owner, project_id, jira)
    base = f"/v1/projects/{project_id}/integrations/jira"
    ok(await owner.post(base + "/sync"))
    from tests.integrations.test_roundtrip import settled

    await settled(owner, base, done=2)
    spec = root / "storage/specs/auth-requirements.md"
    spec.write_text(spec.read_text().replace("Logout", "Sign out"))
    hook = api.base_url + f"/v1/integrations/{ok(await owner.get(base))['id']}/webhook"
    [issue] = jira.by_label(label_for("REQ-AUTH-002"))
    key = issue["key"]  # the order of the two creates is the worker's
    jira.edit(key, summary="REQ-AUTH-002: Log off")
    r = await jira.send_webhook(hook, "whsec-0123456789", key)
    assert r.json()["result"] == "conflict", r.text

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    settings = api.state.settings
    env |= {
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",
    }
    code = "from musubi.cli.main import main; main()"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, "integrations", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def cli(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    [conflict] = json.loads(cli("conflicts", "app", "jira", "--json"))
    assert conflict == {
        "item_id": "REQ-AUTH-002",
        "issue_key": key,
        "local_title": "REQ-AUTH-002: Sign out",
        "remote_title": "REQ-AUTH-002: Log off",
        "remote_status": "To Do",
    }
    table = cli("conflicts", "app", "jira")
    assert "REQ-AUTH-002" in table and "Log off" in table
    rows = json.loads(cli("outbox", "app", "jira", "--json"))
    assert sorted(r["status"] for r in rows) == ["done", "done"]
    # resolved keeping MUSUBI's version: the next sync sends it, the tracker takes it
    assert (
        json.loads(cli("resolve", "app", "jira", "REQ-AUTH-002", "--keep", "local", "--json"))[
            "kept"
        ]
        == "local"
    )
    assert ok(await owner.get(base + "/conflicts"))["items"] == []
    synced = json.loads(cli("sync", "app", "jira", "--wait", "--json"))
    assert synced["queued"] == 1 and synced["delivered"] >= 1
    assert jira.issues[key]["fields"]["summary"] == "REQ-AUTH-002: Sign out"
    # KIND is any installed tracker: an unknown one is named with the installed ones
    for kind, message in (("redmine", "unknown tracker 'redmine'"), ("slack", "not one of")):
        refused = run("sync", "app", kind)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
        assert "jira" in refused.stderr


async def test_a_webhook_body_that_is_not_an_event_is_refused_precisely(
    api: Api, owner: httpx.AsyncClient, jira: FakeJira
) -> None:
    from musubi.integrations.webhooks import sign

    project_id, _ = await project_with_specs(api, owner)
    config = await configure(owner, project_id, jira)
    hook = api.base_url + config["webhook_path"]
    garbage = b"not json"
    r = await owner.post(
        hook, content=garbage, headers={"X-Hub-Signature": sign("whsec-0123456789", garbage)}
    )
    assert r.status_code == 422 and "not a jira event" in r.text
    r = await owner.post(
        api.base_url + "/v1/integrations/int_0000000000000000/webhook", content=b"{}"
    )
    assert r.status_code == 404
