"""Three ``musubi serve`` processes sharing PostgreSQL, Redis and MUSUBI_HOME act as one
system: identical calls coalesce into one upstream call, a tenant's budget is counted once,
the audit chain stays whole under concurrent writers, and tenants stay apart everywhere.

Each test works in its own tenant (or measures deltas), so the order of the tests does not
matter; the replicas and the fake upstream are shared by the module to keep it quick.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.helpers import new_tenant, ok
from tests.gateway.conftest import set_provider
from tests.gateway.fakes import FakeUpstream, serve
from tests.gateway.openai_spec import validate_openai_request
from tests.scaleout.cluster import Server
from tests.scaleout.conftest import Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

REPLICAS = 3
WORKERS = 2
CHAT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"


def chat(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


@asynccontextmanager
async def connect(servers: Sequence[Server], key: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per server, all with ``key``."""
    async with AsyncExitStack() as stack:
        clients = []
        for s in servers:
            client = httpx.AsyncClient(
                base_url=s.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
                limits=httpx.Limits(max_connections=100),
            )
            clients.append(await stack.enter_async_context(client))
        yield clients


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(deployment: Deployment) -> list[Server]:
    started = await deployment.cluster.start_servers(REPLICAS)
    for _ in range(WORKERS):  # after the first server migrated the database
        deployment.cluster.worker("--sweep", "2")
    return started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    """A fake OpenAI slow enough (0.3 s) for concurrent calls to overlap."""
    fake = FakeUpstream(name="shared", latency=0.3, validate=validate_openai_request)
    async with serve(fake) as url:
        yield fake, url


async def wire(client: httpx.AsyncClient, url: str) -> None:
    """Point the client's tenant's OpenAI credential at the fake."""
    await set_provider(
        client, "openai", provider="openai", api_key="sk-test-scaleout-01", base_url=f"{url}/v1"
    )


async def clear_of_minute_boundary(margin_s: float = 10.0) -> None:
    """Per-minute quota windows follow the clock: keep a burst inside one window."""
    now = datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < margin_s:
        await asyncio.sleep(left + 0.2)


def describe(responses: Sequence[httpx.Response]) -> str:
    return "\n".join(
        f"{r.request.url.host}:{r.request.url.port} {r.status_code} {r.text[:300]}"
        for r in responses
    )


async def test_identical_calls_to_three_replicas_reach_the_upstream_once(
    deployment: Deployment, servers: list[Server], upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    async with connect(servers, deployment.owner_key) as clients:
        await wire(clients[0], url)  # the other replicas read (and decrypt) it from the database
        # Warm every replica (key, routing table, quota policies) with a prompt of its own,
        # so the measured calls differ only by which replica they reach.
        for i, client in enumerate(clients):
            ok(await client.post(CHAT, json=chat(f"warm up replica {i}")))
        before = fake.calls
        body = chat(f"one question, three replicas {secrets.token_hex(4)}")
        responses = await asyncio.gather(*(c.post(CHAT, json=body) for c in clients))
    assert [r.status_code for r in responses] == [200] * REPLICAS, describe(responses)
    assert fake.calls - before == 1, f"the upstream was called {fake.calls - before} times"
    answers = {json.dumps(r.json(), sort_keys=True) for r in responses}
    assert len(answers) == 1, answers
    assert responses[0].json()["choices"][0]["message"]["content"] == fake.reply
    routes = [r.headers["x-musubi-route"] for r in responses]
    shared = [r for r in routes if "coalesced=yes" in r or "cache=hit" in r]
    assert len(shared) == REPLICAS - 1, routes
    deployment.cluster.check_running()


async def test_a_tenant_budget_holds_across_replicas(
    deployment: Deployment, servers: list[Server], upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    async with connect(servers[:1], deployment.owner_key) as (root,):
        _, key = await new_tenant(root, "budget")
    async with connect(servers, key) as clients:
        await wire(clients[1], url)
        limits = {"requests_per_minute": 10}
        ok(await clients[2].put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
        await clear_of_minute_boundary()
        before = fake.calls
        responses = await asyncio.gather(
            *(clients[i % REPLICAS].post(CHAT, json=chat(f"budget call {i}")) for i in range(30))
        )
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 10, 429: 20}, f"{codes}\n{describe(responses)}"
    assert fake.calls - before == 10
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1, r.headers
            assert "requests_per_minute" in r.text, r.text
    deployment.cluster.check_running()


async def test_the_audit_chain_stays_valid_under_concurrent_writers(
    deployment: Deployment, servers: list[Server]
) -> None:
    async with connect(servers[:1], deployment.owner_key) as (root,):
        tenant_id, key = await new_tenant(root, "audited")
    async with connect(servers, key) as clients:
        writes = [
            clients[i % REPLICAS].post(path, json={"name": f"{kind}-{i}"})
            for i in range(12)
            for kind, path in (("project", "/v1/projects"), ("team", "/v1/teams"))
        ]
        responses = await asyncio.gather(*writes)
        assert [r.status_code for r in responses] == [201] * len(writes), describe(responses)
        # Every replica verifies the chain that all three wrote and signed (one shared key).
        reports = [ok(await c.post("/v1/audit/verify")) for c in clients]
        created = ok(await clients[0].get("/v1/audit/events", params={"action": "project.create"}))
    for report in reports:
        assert report["ok"] and report["broken"] is None, report
        assert report["tenant_id"] == tenant_id
    assert {(r["checked"], r["last_seq"]) for r in reports} == {
        (reports[0]["checked"], reports[0]["last_seq"])
    }
    assert reports[0]["checked"] >= len(writes), reports[0]
    assert len(created["items"]) == 12
    deployment.cluster.check_running()


async def test_another_tenant_cannot_reach_a_project_through_any_replica(
    deployment: Deployment, servers: list[Server]
) -> None:
    async with connect(servers, deployment.owner_key) as owners:
        project = ok(await owners[0].post("/v1/projects", json={"name": "secret plans"}), 201)
        _, other_key = await new_tenant(owners[1], "intruder")
        async with connect(servers, other_key) as others:
            for client in others:
                path = f"/v1/projects/{project['id']}"
                assert (await client.get(path)).status_code == 404
                assert (await client.patch(path, json={"name": "stolen"})).status_code == 404
                assert (await client.delete(path)).status_code == 404
                listed = ok(await client.get("/v1/projects"))["items"]
                assert project["id"] not in {p["id"] for p in listed}
        for client in owners:  # untouched, and visible to its own tenant everywhere
            assert ok(await client.get(f"/v1/projects/{project['id']}"))["name"] == "secret plans"
    deployment.cluster.check_running()


async def test_batch_lines_and_live_calls_share_one_budget_across_servers_and_workers(
    deployment: Deployment, servers: list[Server], upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    async with connect(servers[:1], deployment.owner_key) as (root,):
        _, key = await new_tenant(root, "batch-budget")
    async with connect(servers, key) as clients:
        await wire(clients[0], url)
        limits = {"requests_per_minute": 25}
        ok(await clients[1].put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
        await clear_of_minute_boundary(margin_s=20)
        before = fake.calls
        lines = "\n".join(
            json.dumps(
                {"custom_id": f"l{i}", "method": "POST", "url": CHAT, "body": chat(f"line {i}")}
            )
            for i in range(40)
        )
        files = {"file": ("b.jsonl", lines.encode())}
        uploaded = ok(await clients[2].post("/v1/files", files=files, data={"purpose": "batch"}))
        spec = {"input_file_id": uploaded["id"], "endpoint": CHAT}
        batch = ok(await clients[0].post("/v1/batches", json=spec))
        live = await asyncio.gather(
            *(clients[i % REPLICAS].post(CHAT, json=chat(f"live {i}")) for i in range(10))
        )
        await asyncio.sleep(4)  # the workers send what the budget admits, then wait
        progress = ok(await clients[1].get(f"/v1/batches/{batch['id']}"))
        served = sum(r.status_code == 200 for r in live)
        sent = fake.calls - before
        assert sent == 25, f"{sent} upstream calls in one minute with a budget of 25"
        assert progress["status"] == "in_progress"
        assert progress["request_counts"]["completed"] == 25 - served
        assert all(r.status_code in (200, 429) for r in live), describe(live)
        cancelled = ok(await clients[2].post(f"/v1/batches/{batch['id']}/cancel"))
        assert cancelled["status"] in ("cancelling", "cancelled")
    assert all(w.running for w in deployment.cluster.workers)
    deployment.cluster.check_running()


async def test_a_hundred_identical_calls_across_replicas_make_one_upstream_call(
    deployment: Deployment, servers: list[Server], upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    async with connect(servers, deployment.owner_key) as clients:
        await wire(clients[0], url)
        before = fake.calls
        body = chat(f"a hundred times the same {secrets.token_hex(4)}")
        responses = await asyncio.gather(
            *(clients[i % REPLICAS].post(CHAT, json=body) for i in range(100))
        )
    assert [r.status_code for r in responses] == [200] * 100, describe(responses)
    assert fake.calls - before == 1, f"the upstream was called {fake.calls - before} times"


async def test_five_hundred_calls_across_replicas_never_overspend_a_token_budget(
    deployment: Deployment, servers: list[Server], upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    async with connect(servers[:1], deployment.owner_key) as (root,):
        _, key = await new_tenant(root, "token-budget")
    budget = 1000
    async with connect(servers, key) as clients:
        await wire(clients[0], url)
        limits = {"tokens_per_day": budget}
        ok(await clients[1].put("/v1/quotas", json={"scope": "tenant", "limits": limits}))
        before = fake.calls
        responses = await asyncio.gather(
            *(
                clients[i % REPLICAS].post(CHAT, json={**chat(f"t{i}"), "max_tokens": 10})
                for i in range(500)
            )
        )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 429}, describe(responses)
    served = fake.calls - before
    assert served == codes[200] > 0
    usage = {"prompt_tokens": 11, "completion_tokens": 7}  # what the fake reports per call
    spent = served * sum(usage.values())
    # One call's reservation: its prompt's bound (35 bytes of JSON + 20 for templates, until
    # the replica has loaded the model's tokenizer) + max_tokens. Calls in flight hold that
    # while they use 18, so the last refused calls may leave a few reservations unused.
    one_reservation = 65
    assert spent <= budget, f"{served} calls spent {spent} of {budget} tokens"
    assert spent >= budget - 3 * one_reservation  # and the budget was really used
