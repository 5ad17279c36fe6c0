"""Issue 14, finding 1: the audit chain cannot be forged, rolled back or cut short unseen.

Each test is an attacker's scenario against a real server and database: the database
writer edits rows with SQL (it has the database, not the signing key), an anonymous
caller triggers an audited refusal, and the operator runs ``musubi audit verify`` in a
new process, as on the server host.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from musubi.api.app import open_state
from musubi.errors import AuditIntegrityError
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api
from tests.security.audit_attacker import musubi, rehash_from, sql


async def _root(owner: httpx.AsyncClient) -> tuple[str, str]:
    """The root tenant's id and the owner key's prefix."""
    me = ok(await owner.get("/v1/me"))
    return me["tenant_id"], owner.headers["authorization"].split("_")[1]


async def _wrong_secret(api: Api, prefix: str) -> httpx.Response:
    """An anonymous request with a real key prefix and a wrong secret: an audited 401."""
    async with api.client(f"msk_{prefix}_{'x' * 43}") as anon:
        return await anon.get("/v1/me")


async def test_forged_chain_is_not_signed_by_the_next_append(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    tenant, prefix = await _root(owner)
    for name in ("core", "web", "ops"):
        ok(await owner.post("/v1/teams", json={"name": name}), 201)
    # The database writer rewrites an event and recomputes every hash after it.
    await sql(
        api.state.db,
        "UPDATE audit_events SET target = 'nothing' WHERE tenant_id = :t AND seq = 2",
        t=tenant,
    )
    await rehash_from(api.state.db, tenant, 2)
    # Then asks the server for one audited event, anonymously.
    assert (await _wrong_secret(api, prefix)).status_code == 401
    # The server refused to sign it: the operator's verify fails.
    verify = await musubi(settings, "audit", "verify")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "chain head signature is invalid" in verify.stderr
    # An audited change cannot extend the forged chain either: it fails loudly.
    r = await owner.post("/v1/teams", json={"name": "after"})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["type"] == "audit_integrity"
    assert not [t for t in ok(await owner.get("/v1/teams"))["items"] if t["name"] == "after"]


async def test_rollback_to_an_older_signed_head_is_caught_by_a_checkpoint(
    api: Api, owner: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    tenant, _ = await _root(owner)
    ok(await owner.post("/v1/teams", json={"name": "before"}), 201)
    [saved] = await sql(
        api.state.db, "SELECT seq, hash, signature FROM audit_heads WHERE tenant_id = :t", t=tenant
    )
    for name in ("evidence-1", "evidence-2"):
        ok(await owner.post("/v1/teams", json={"name": name}), 201)
    checkpoints = tmp_path / "elsewhere" / "checkpoints.jsonl"
    checkpoints.parent.mkdir()
    taken = await musubi(settings, "audit", "checkpoint", "--output", str(checkpoints))
    assert taken.returncode == 0, taken.stderr
    # The database writer deletes the newer events and puts the older signed head back.
    await sql(
        api.state.db,
        "DELETE FROM audit_events WHERE tenant_id = :t AND seq > :s",
        t=tenant,
        s=saved.seq,
    )
    await sql(
        api.state.db,
        "UPDATE audit_heads SET seq = :s, hash = :h, signature = :g WHERE tenant_id = :t",
        s=saved.seq,
        h=saved.hash,
        g=saved.signature,
        t=tenant,
    )
    # Inside the database the older state is consistent; the checkpoint shows the rollback.
    assert (await musubi(settings, "audit", "verify")).returncode == 0
    behind = await musubi(
        settings, "audit", "verify", "--all-tenants", "--checkpoints", str(checkpoints)
    )
    assert behind.returncode == 1
    assert "behind the checkpointed seq" in behind.stderr
    # The running server remembers what it signed and refuses to extend the old head.
    assert (await owner.post("/v1/teams", json={"name": "x"})).status_code == 503
    # A new process does not remember; what it appends diverges from the checkpoint.
    for name in ("later-1", "later-2"):  # up to the checkpointed seq again
        assert (await musubi(settings, "teams", "create", name)).returncode == 0
    diverged = await musubi(settings, "audit", "verify", "--checkpoints", str(checkpoints))
    assert diverged.returncode == 1
    assert "diverged" in diverged.stderr


async def test_a_missing_signing_key_stops_the_server_and_the_cli(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    ok(await owner.post("/v1/teams", json={"name": "core"}), 201)
    key = settings.home / "audit-signing.pem"
    key.unlink()  # the attacker deletes the key file, hoping for a fresh one
    cli = await musubi(settings, "audit", "verify")
    assert cli.returncode == 1
    assert "MUSUBI_AUDIT_SIGNING_KEY" in cli.stderr and str(key) in cli.stderr
    assert not key.exists()
    try:
        state = await open_state(settings, announce=False)  # what the server runs on start
    except AuditIntegrityError as exc:
        assert "audit signing key is missing" in exc.message
    else:
        await state.close()
        raise AssertionError("the server started without its signing key")
    assert not key.exists()


async def test_deleting_a_tenant_whole_is_found(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    victim = ok(await owner.post("/v1/tenants", json={"name": "victim"}), 201)["tenant"]["id"]
    kept = ok(await owner.post("/v1/tenants", json={"name": "kept"}), 201)["tenant"]["id"]
    assert (await musubi(settings, "audit", "verify", "--all-tenants")).returncode == 0
    # The database writer removes the victim's events and head row, then the tenant too.
    for table in ("audit_events", "audit_heads"):
        await sql(api.state.db, f"DELETE FROM {table} WHERE tenant_id = :t", t=victim)
    half = await musubi(settings, "audit", "verify", "--all-tenants", "--json")
    assert half.returncode == 1
    assert f"audit chain of tenant {victim} is broken" in half.stderr
    await sql(api.state.db, "DELETE FROM tenants WHERE id = :t", t=victim)
    whole = await musubi(settings, "audit", "verify", "--all-tenants")
    assert whole.returncode == 1
    assert f"audit chain of tenant {victim} is broken" in whole.stderr
    assert "is registered but its audit chain has no head" in whole.stderr
    assert kept not in whole.stderr


async def test_a_deleted_chain_is_not_begun_again_unseen(
    api: Api, owner: httpx.AsyncClient, settings: Settings
) -> None:
    tenant, _ = await _root(owner)
    ok(await owner.post("/v1/teams", json={"name": "core"}), 201)
    for table in ("audit_events", "audit_heads"):
        await sql(api.state.db, f"DELETE FROM {table} WHERE tenant_id = :t", t=tenant)
    # The running server remembers the chain it signed and will not begin it again.
    r = await owner.post("/v1/teams", json={"name": "web"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "audit_integrity"
    # A new process begins a fresh chain, whose first event is not the tenant's creation:
    # verify names the chain as begun again.
    assert (await musubi(settings, "teams", "create", "ops")).returncode == 0
    verify = await musubi(settings, "audit", "verify")
    assert verify.returncode == 1
    assert "begun again" in verify.stderr
    # With events left and the head row deleted, no process begins a new chain.
    await sql(api.state.db, "DELETE FROM audit_heads WHERE tenant_id = :t", t=tenant)
    refused = await musubi(settings, "teams", "create", "qa")
    assert refused.returncode == 1
    assert "has events (or had, in this process) but no signed head" in refused.stderr
