"""The operator CLI end to end: each test runs ``musubi`` commands on its own SQLite home."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from musubi.cli.main import cli


@dataclass
class Musubi:
    """Runs ``musubi ARGS`` with MUSUBI_HOME pointing at this test's home."""

    home: Path

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(
            cli, list(args), env={"MUSUBI_HOME": str(self.home)}, catch_exceptions=False
        )
        assert result.exit_code == code, (
            f"musubi {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def musubi(tmp_path: Path) -> Musubi:
    return Musubi(tmp_path / "home")


def test_first_run_bootstraps_and_lists_the_root_tenant(musubi: Musubi) -> None:
    first = musubi("tenants", "list", "--json")
    assert "owner API key (shown once, store it now): msk_" in first.stderr
    [root] = json.loads(first.stdout)
    assert root["name"] == "default"
    assert root["is_root"] is True

    again = musubi("tenants", "list")
    assert "owner API key" not in again.stderr  # bootstrap runs once
    assert "default" in again.stdout
    assert musubi.json("tenants", "show", "default")["id"] == root["id"]


def test_team_project_user_key_and_roles(musubi: Musubi) -> None:
    team = musubi.json("teams", "create", "core", "--description", "Core team")
    assert team["name"] == "core"
    project = musubi.json("projects", "create", "web", "--team", "core")
    assert project["team_id"] == team["id"]
    assert [p["id"] for p in musubi.json("projects", "list", "--team", team["id"])] == [
        project["id"]
    ]
    user = musubi.json("users", "create", "ci-bot", "--kind", "service")
    assert user["kind"] == "service"
    assert not user["disabled"]

    # A key's token is printed once, at create, and never by a listing.
    created = musubi("keys", "create", "--user", "ci-bot", "--project", "web", "--name", "ci")
    token = created.stdout.split("token (shown once, store it now): ", 1)[1].strip()
    assert token.startswith("msk_")
    assert created.stdout.count(token) == 1
    key = musubi.json("keys", "create", "--user", user["id"], "--expires-in-days", "7")
    assert key["token"].startswith(f"msk_{key['prefix']}_")
    assert key["state"] == "active"
    secret = key["token"].removeprefix(f"msk_{key['prefix']}_")
    listing = musubi("keys", "list", "--json").stdout + musubi("keys", "list").stdout
    assert token not in listing
    assert secret not in listing
    mine = musubi.json("keys", "list", "--user", "ci-bot")
    assert {k["project_id"] for k in mine} == {project["id"], None}
    assert musubi.json("keys", "revoke", key["id"])["state"] == "revoked"

    role = musubi.json(
        "roles", "create", "reader", "--permission", "teams:read",
        "--permission", "projects:read", "--description", "Reads",
    )  # fmt: skip
    assert role["permissions"] == ["projects:read", "teams:read"]
    assert not role["builtin"]
    roles = {r["name"]: r for r in musubi.json("roles", "list")}
    assert roles["owner"]["builtin"]
    assert roles["reader"]["id"] == role["id"]
    assigned = musubi.json("roles", "assign", "ci-bot", "reader", "--project", "web")
    assert (assigned["scope"], assigned["scope_id"]) == ("project", project["id"])
    [held] = musubi.json("roles", "assignments", "--user", "ci-bot")
    assert held["id"] == assigned["id"]
    still_assigned = musubi("roles", "delete", "reader", code=1)
    assert "still assigned" in still_assigned.stderr
    musubi("roles", "unassign", assigned["id"])
    musubi("roles", "delete", "reader")
    assert "reader" not in {r["name"] for r in musubi.json("roles", "list")}
    unknown = musubi("roles", "create", "bad", "--permission", "nope:nope", code=1)
    assert "unknown permissions: nope:nope" in unknown.stderr
    assert "audit:verify" in {p["permission"] for p in musubi.json("roles", "permissions")}

    assert musubi.json("users", "update", "ci-bot", "--disable")["disabled"] is True
    assert musubi.json("users", "update", "ci-bot", "--enable")["disabled"] is False
    renamed = musubi.json("teams", "update", "core", "--name", "platform")
    assert (renamed["id"], renamed["name"]) == (team["id"], "platform")
    assert musubi.json("projects", "update", "web", "--no-team")["team_id"] is None
    musubi("projects", "delete", "web")
    musubi("teams", "delete", "platform")
    musubi("users", "delete", "ci-bot")
    assert musubi.json("teams", "list") == []
    assert [u["name"] for u in musubi.json("users", "list")] == ["owner"]


def test_another_tenant_is_invisible(musubi: Musubi) -> None:
    acme = musubi.json("tenants", "create", "acme", "--owner-name", "boss")
    assert acme["owner_key"].startswith("msk_")
    team = musubi.json("teams", "create", "secret", "--tenant", "acme")
    assert team["tenant_id"] == acme["id"]

    refused = musubi("teams", "show", team["id"], "--tenant", "default", code=1)
    assert f"team {team['id']!r} not found" in refused.stderr
    assert musubi.json("teams", "list", "--tenant", "default") == []
    assert musubi.json("teams", "show", "secret", "--tenant", acme["id"])["id"] == team["id"]
    assert [u["name"] for u in musubi.json("users", "list", "--tenant", "acme")] == ["boss"]

    root = musubi("tenants", "delete", "default", "--yes", code=1)
    assert "the root tenant cannot be deleted" in root.stderr
    musubi("tenants", "delete", "acme", "--yes")
    assert [t["name"] for t in musubi.json("tenants", "list")] == ["default"]
    musubi("teams", "list", "--tenant", "acme", code=1)


def test_audit_verify_names_the_tampered_event(musubi: Musubi) -> None:
    report = musubi.json("audit", "verify")
    assert report["ok"] is True
    assert report["checked"] >= 4  # bootstrap: tenant, owner, role, key

    with sqlite3.connect(musubi.home / "musubi.db") as db:
        db.execute("UPDATE audit_events SET action='x' WHERE seq=2")
    db.close()

    broken = musubi("audit", "verify", code=1)
    assert "broken at seq 2 (event id " in broken.stderr
    assert "content does not match its hash" in broken.stderr
    report = json.loads(musubi("audit", "verify", "--json", code=1).stdout)
    assert report["ok"] is False
    assert report["broken"]["seq"] == 2
    musubi("audit", "verify", "--all-tenants", code=1)
    # Recorded once, outside the chain, for the tenant's chats (however often it is found).
    with sqlite3.connect(musubi.home / "musubi.db") as db:
        alerts = db.execute("SELECT tenant_id, kind, facts FROM chat_alerts").fetchall()
    db.close()
    assert [(t, k, json.loads(f)["seq"]) for t, k, f in alerts] == [
        (report["tenant_id"], "audit_failed", "2")
    ]


def test_verify_all_tenants_includes_the_system_chain(musubi: Musubi) -> None:
    acme = musubi.json("tenants", "create", "acme")
    asyncio.run(_record_system_event(musubi.home))

    reports = {r["tenant_id"]: r for r in musubi.json("audit", "verify", "--all-tenants")}
    assert set(reports) == {musubi.json("tenants", "show", "default")["id"], acme["id"], "_system"}
    assert all(r["ok"] for r in reports.values())
    musubi("audit", "verify", "--all-tenants", "--tenant", "acme", code=2)


async def _record_system_event(home: Path) -> None:
    """What the API does for an unknown key: an event in the '_system' chain."""
    from musubi.api.app import open_state
    from musubi.audit.service import record
    from musubi.context import SYSTEM_TENANT, system_scope
    from musubi.settings import Settings

    state = await open_state(Settings(home=home, database_url=None))
    try:
        with system_scope():
            async with state.db.transaction() as s:
                await record(s, "auth.failed", outcome="denied", tenant_id=SYSTEM_TENANT)
    finally:
        await state.db.dispose()


def test_audit_list_export_and_purge(musubi: Musubi, tmp_path: Path) -> None:
    musubi("teams", "create", "core")
    [event] = musubi.json("audit", "list", "--action", "team.*")
    assert (event["action"], event["actor"][:4]) == ("team.create", "cli:")
    newest_first = [e["seq"] for e in musubi.json("audit", "list", "--limit", "3")]
    assert newest_first == sorted(newest_first, reverse=True)
    assert len(newest_first) == 3
    assert musubi.json("audit", "list", "--since", "2999-01-01") == []

    exported = musubi("audit", "export")
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["action"] == "team.create"
    assert f"exported {len(events)} events" in exported.stderr
    out = tmp_path / "audit.jsonl"
    musubi("audit", "export", "--output", str(out), "--action", "team.create")
    assert [json.loads(line)["action"] for line in out.read_text().splitlines()] == ["team.create"]

    assert musubi.json("audit", "purge")["removed"] == 0  # nothing is older than retention
    [purged] = musubi.json("audit", "list", "--action", "audit.purge")
    assert purged["detail"] == {"removed": 0, "retention_days": 365}
    assert musubi.json("audit", "verify")["ok"] is True


# What a management command must not load: the web application (FastAPI, its routers), the
# gateway (aiohttp), the batch runner, the migration tool when the schema is at head, the
# areas no management command touches, and (loaded by the server's authentication only)
# musubi.identity.auth. `musubi teams list` imported 926 modules, 1.1-1.3 s on a quiet
# machine, because the CLI opened the database through musubi.api.app.
SERVER_ONLY = (
    "fastapi",
    "musubi.api.app",
    "musubi.gateway.pipeline",
    "aiohttp",
    "uvicorn",
    "alembic",
    "musubi.identity.auth",
    "musubi.knowledge",
    "musubi.sdd",
    "musubi.orchestrator",
    "musubi.batch",
)
# Loaded only to create the root tenant on the first run, or by the commands that manage
# users, keys, roles and SSO.
IDENTITY_SERVICES = (
    "musubi.identity.service",
    "musubi.access.service",
    "musubi.identity.sign_in",
    "musubi.sso.models",
)


@pytest.mark.parametrize(
    ("args", "unused"),
    [
        (("teams", "list"), SERVER_ONLY + IDENTITY_SERVICES),
        (("audit", "list"), SERVER_ONLY + IDENTITY_SERVICES),
        (("users", "list"), SERVER_ONLY),
    ],
)
def test_management_commands_import_only_what_they_use(
    tmp_path: Path, args: tuple[str, ...], unused: tuple[str, ...]
) -> None:
    code = (
        "import sys\nfrom musubi.cli.main import cli\n"
        f"cli({list(args)!r}, standalone_mode=False)\n"
        f"print('loaded:', ','.join(m for m in {unused!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "MUSUBI_HOME": str(tmp_path / "home")},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    run()  # the first run creates the database and the root tenant
    assert run() == "loaded:"
