"""Files and batches hold to project scope and ownership inside a tenant (issue 14, finding 4).

The attacker is a member of the owner's tenant: an admin of project P whose key is
restricted to P. Before the fix that key listed the owner's files, read their content and
the batch's output, reused the owner's file as batch input, cancelled the owner's batch and
deleted the owner's file. Now every one of those answers 404, as for an id that does not
exist. Inside a project files are shared, as in OpenAI's Files API; deleting or cancelling
someone else's needs ``projects:write`` there (see musubi.batch.ownership, docs/batch.md).
Runs on SQLite and PostgreSQL (row-level security on).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import ok, user_with_role
from tests.batch.conftest import chat_lines
from tests.conftest import Api
from tests.gateway.conftest import _no_ollama_probe
from tests.gateway.fakes import FakeUpstream, serve
from tests.gateway.openai_spec import validate_openai_request

__all__ = ["_no_ollama_probe"]


@pytest.fixture
async def gated(owner: httpx.AsyncClient) -> AsyncIterator[asyncio.Event]:
    """The tenant's OpenAI credential points at a fake upstream that holds every request
    while the returned gate is clear (so a batch keeps running); the gate starts open."""
    gate = asyncio.Event()
    gate.set()
    fake = FakeUpstream(name="gated", validate=validate_openai_request, gate=gate)
    async with serve(fake) as url:
        body = {"provider": "openai", "api_key": "sk-test-scope-01", "base_url": f"{url}/v1"}
        ok(await owner.put("/v1/gateway/providers/openai", json=body))
        yield gate
        gate.set()


_uploads = itertools.count()


async def _upload(client: httpx.AsyncClient, n: int = 2) -> str:
    """A new batch file; its questions are new too (an answer is never a cache hit)."""
    files = {"file": ("in.jsonl", chat_lines(n, start=1000 * next(_uploads) + 1))}
    return str(ok(await client.post("/v1/files", files=files, data={"purpose": "batch"}))["id"])


async def _batch(client: httpx.AsyncClient, file_id: str) -> dict[str, Any]:
    spec = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    result: dict[str, Any] = ok(await client.post("/v1/batches", json=spec))
    return result


async def _project(owner: httpx.AsyncClient, name: str) -> str:
    return str(ok(await owner.post("/v1/projects", json={"name": name}), 201)["id"])


def _not_found(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found", r.text  # OpenAI's error shape here


async def _finished(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    """The batch once it has completed (polled)."""
    async with asyncio.timeout(60):
        while True:
            batch: dict[str, Any] = ok(await client.get(f"/v1/batches/{batch_id}"))
            if batch["status"] == "completed":
                return batch
            await asyncio.sleep(0.05)


async def test_a_project_key_cannot_reach_the_owners_files_and_batches(
    api: Api, owner: httpx.AsyncClient, gated: asyncio.Event
) -> None:
    # the owner's finished batch (with an output file) and a running one
    done_file = await _upload(owner)
    done = await _batch(owner, done_file)
    output = (await _finished(owner, done["id"]))["output_file_id"]
    assert output
    gated.clear()
    running_file = await _upload(owner)
    running = await _batch(owner, running_file)

    project = await _project(owner, "p")
    _, token = await user_with_role(
        owner, "mallory", "admin", scope="project", scope_id=project, project_id=project
    )
    async with api.client(token) as mallory:
        listed = ok(await mallory.get("/v1/files"))
        assert listed["data"] == [] and listed["has_more"] is False
        assert ok(await mallory.get("/v1/batches"))["data"] == []
        for path in (
            f"/v1/files/{done_file}",
            f"/v1/files/{done_file}/content",
            f"/v1/files/{output}",
            f"/v1/files/{output}/content",
            f"/v1/batches/{done['id']}",
            f"/v1/batches/{running['id']}",
        ):
            _not_found(await mallory.get(path))
        r = await mallory.get("/v1/files", params={"after": done_file})  # no timing oracle
        assert r.status_code == 400 and r.json()["error"]["param"] == "after", r.text
        _not_found(
            await mallory.post(
                "/v1/batches",
                json={"input_file_id": done_file, "endpoint": "/v1/chat/completions"},
            )
        )
        _not_found(await mallory.post(f"/v1/batches/{running['id']}/cancel"))
        _not_found(await mallory.delete(f"/v1/files/{done_file}"))
        _not_found(await mallory.delete(f"/v1/files/{output}"))

        # what P's key makes is P's: the owner (tenant-wide) sees it, the project key too
        mine = await _upload(mallory, 1)
        assert [f["id"] for f in ok(await mallory.get("/v1/files"))["data"]] == [mine]
    owners = {f["id"] for f in ok(await owner.get("/v1/files"))["data"]}
    assert {done_file, output, running_file, mine} <= owners
    # the owner's objects are untouched
    assert ok(await owner.get(f"/v1/batches/{running['id']}"))["status"] == "in_progress"
    assert ok(await owner.get(f"/v1/files/{done_file}"))["id"] == done_file
    content = await owner.get(f"/v1/files/{output}/content")
    assert content.status_code == 200 and b'"custom_id"' in content.content
    assert ok(await owner.post(f"/v1/batches/{running['id']}/cancel"))["status"] == "cancelling"


async def test_inside_a_project_files_are_shared_and_only_maintainers_remove_others(
    api: Api, owner: httpx.AsyncClient, gated: asyncio.Event
) -> None:
    gated.clear()  # batches keep running
    p, q = await _project(owner, "p"), await _project(owner, "q")
    _, alice_t = await user_with_role(
        owner, "alice", "developer", scope="project", scope_id=p, project_id=p
    )
    _, bob_t = await user_with_role(
        owner, "bob", "developer", scope="project", scope_id=p, project_id=p
    )
    _, lead_t = await user_with_role(
        owner, "lead", "maintainer", scope="project", scope_id=p, project_id=p
    )
    # carol works on q, with a key not restricted to a project
    _, carol_t = await user_with_role(owner, "carol", "developer", scope="project", scope_id=q)
    async with (
        api.client(alice_t) as alice,
        api.client(bob_t) as bob,
        api.client(lead_t) as lead,
        api.client(carol_t) as carol,
    ):
        shared = await _upload(alice)
        batch = await _batch(alice, shared)  # held at the gate: running
        # bob, in the same project, sees and reads alice's file and follows her batch
        assert [f["id"] for f in ok(await bob.get("/v1/files"))["data"]] == [shared]
        assert b'"custom_id"' in (await bob.get(f"/v1/files/{shared}/content")).content
        assert ok(await bob.get(f"/v1/batches/{batch['id']}"))["id"] == batch["id"]
        # ... but may not delete it nor cancel her batch: that is 403, not 404
        for r in (
            await bob.delete(f"/v1/files/{shared}"),
            await bob.post(f"/v1/batches/{batch['id']}/cancel"),
        ):
            assert r.status_code == 403, r.text
            assert "projects:write" in r.json()["error"]["message"], r.text
        # carol (project q, unrestricted key) sees neither p's objects nor the owner's
        owners = await _upload(owner)
        theirs = await _upload(carol)
        assert [f["id"] for f in ok(await carol.get("/v1/files"))["data"]] == [theirs]
        for file_id in (shared, owners):
            _not_found(await carol.get(f"/v1/files/{file_id}/content"))
        _not_found(await carol.get(f"/v1/batches/{batch['id']}"))
        # p's maintainer may remove what others made in p
        cancelled = ok(await lead.post(f"/v1/batches/{batch['id']}/cancel"))
        assert cancelled["status"] == "cancelling"
        ok(await lead.delete(f"/v1/files/{shared}"))
        _not_found(await alice.get(f"/v1/files/{shared}"))
        # and each deletes their own
        ok(await carol.delete(f"/v1/files/{theirs}"))
        finished = await alice.get(f"/v1/batches/{batch['id']}")
        assert finished.status_code == 200


async def test_a_batch_output_belongs_to_the_batch_project_and_creator(
    api: Api, owner: httpx.AsyncClient, gated: asyncio.Event
) -> None:
    p, q = await _project(owner, "p"), await _project(owner, "q")
    _, alice_t = await user_with_role(
        owner, "alice", "developer", scope="project", scope_id=p, project_id=p
    )
    _, eve_t = await user_with_role(
        owner, "eve", "developer", scope="project", scope_id=q, project_id=q
    )
    async with api.client(alice_t) as alice, api.client(eve_t) as eve:
        batch = await _batch(alice, await _upload(alice))
        output = (await _finished(alice, batch["id"]))["output_file_id"]
        assert (await alice.get(f"/v1/files/{output}/content")).status_code == 200
        _not_found(await eve.get(f"/v1/files/{output}/content"))
        assert output not in {f["id"] for f in ok(await eve.get("/v1/files"))["data"]}
        ok(await alice.delete(f"/v1/files/{output}"))  # the batch's creator owns its output


async def test_a_team_role_sees_the_files_of_the_teams_projects_only(
    api: Api, owner: httpx.AsyncClient, gated: asyncio.Event
) -> None:
    team = ok(await owner.post("/v1/teams", json={"name": "t"}), 201)["id"]
    inside = ok(await owner.post("/v1/projects", json={"name": "in", "team_id": team}), 201)["id"]
    outside = await _project(owner, "out")
    _, in_t = await user_with_role(
        owner, "ina", "developer", scope="project", scope_id=inside, project_id=inside
    )
    _, out_t = await user_with_role(
        owner, "outa", "developer", scope="project", scope_id=outside, project_id=outside
    )
    _, lead_t = await user_with_role(owner, "tl", "developer", scope="team", scope_id=team)
    async with api.client(in_t) as a, api.client(out_t) as b, api.client(lead_t) as lead:
        in_file, out_file = await _upload(a), await _upload(b)
        owners_file = await _upload(owner)
        assert [f["id"] for f in ok(await lead.get("/v1/files"))["data"]] == [in_file]
        assert ok(await lead.get(f"/v1/files/{in_file}"))["id"] == in_file
        for file_id in (out_file, owners_file):
            _not_found(await lead.get(f"/v1/files/{file_id}"))
