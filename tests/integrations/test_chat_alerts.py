"""Chat alerts that are no run event, through a real server and the Slack and Teams fakes:
a quota crossing 80 % of its limit is posted once per counter window (two stores crossing
it and two workers polling included), a tenant-wide quota to every chat of the tenant;
an audit chain found broken by ``POST /v1/audit/verify`` is posted once, however often
it is verified again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from musubi.context import bind_tenant, system_scope
from musubi.gateway.secrets import SecretBox
from musubi.integrations.alerts import post_alerts
from musubi.integrations.outbox import OutboxWorker
from musubi.quotas.service import Quotas, QuotaScope
from musubi.quotas.store import MemoryStore
from tests.api.helpers import ok
from tests.conftest import Api
from tests.integrations.chat_fakes import FakeSlack, FakeTeams
from tests.integrations.test_roundtrip import project_with_specs


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def teams() -> Iterator[FakeTeams]:
    with FakeTeams().serve() as fake:
        yield fake  # type: ignore[misc]


class Noon(datetime):
    """A clock stopped mid-minute: every reservation falls in the same windows."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Noon:
        return cls(2026, 12, 7, 12, 0, 30, tzinfo=tz or UTC)


class NoonAndAMinute(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> NoonAndAMinute:
        return cls(2026, 12, 7, 12, 1, 30, tzinfo=tz or UTC)


def _fields(message: dict[str, Any]) -> dict[str, str]:
    """The facts of a Slack notice: ``*name*\\nvalue`` fields."""
    out = {}
    for block in message["blocks"]:
        for f in block.get("fields", []):
            name, value = f["text"].split("\n", 1)
            out[name.strip("*")] = value
    return out


async def _kinds(api: Api, tenant_id: str) -> list[str]:
    from sqlalchemy import select

    from musubi.alerts import ChatAlert

    with bind_tenant(tenant_id):
        async with api.state.db.read() as s:
            return list(await s.scalars(select(ChatAlert.kind).order_by(ChatAlert.created_at)))


async def test_quota_at_80_percent_is_posted_once_per_window(
    api: Api, owner: httpx.AsyncClient, slack: FakeSlack
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    chat = {"target": "C0123456789", "base_url": f"{slack.url}/api/", "token": slack.token}
    ok(await owner.put(f"/v1/projects/{project_id}/integrations/slack", json=chat))
    limits = {"scope": "project", "scope_id": project_id, "limits": {"tokens_per_minute": 1000}}
    ok(await owner.put("/v1/quotas", json=limits))
    ok(
        await owner.put(
            "/v1/quotas", json={"scope": "tenant", "limits": {"requests_per_minute": 10}}
        )
    )
    db, box = api.state.db, SecretBox.load(api.state.settings.home)
    egress = api.state.settings.egress_rules
    # Two replicas, each with its own counters (no shared Redis): each crosses 80 % once.
    replicas = [Quotas(db, MemoryStore(), cache_seconds=0, clock=Noon) for _ in range(2)]
    scope = QuotaScope(tenant_id, project_id=project_id)

    quotas = replicas[0]
    for _ in range(2):
        await quotas.reserve(scope, tokens=300, cost=0)  # 300, 600 tokens: under 80 %
    await quotas.flush_warnings()
    assert await post_alerts(db, box, egress) == 0 and slack.messages == []
    await quotas.reserve(scope, tokens=300, cost=0)  # 900 of 1000: crossed
    await quotas.reserve(scope, tokens=50, cost=0)  # 950: still above, no new crossing
    assert await quotas.flush_warnings() == 1
    assert await post_alerts(db, box, egress) == 1
    assert await post_alerts(db, box, egress) == 0
    [message] = slack.messages
    assert await _kinds(api, tenant_id) == ["quota_80"]
    assert message["blocks"][0]["text"]["text"] == "Quota at 80 %: project tokens_per_minute"
    assert "900 of 1000 used" in message["blocks"][1]["text"]["text"]
    assert _fields(message) == {
        "scope": f"project {project_id}",
        "limit": "tokens_per_minute",
        "used": "900",
        "of": "1000",
        "window": "202612071200",
    }

    # The other replica crosses the same window: recorded once already, not posted again.
    other = replicas[1]
    for _ in range(3):
        await other.reserve(scope, tokens=300, cost=0)
    assert await other.flush_warnings() == 0

    # A later minute of the same hour crosses again: a per-minute limit warns once an hour.
    later = Quotas(db, MemoryStore(), cache_seconds=0, clock=NoonAndAMinute)
    for _ in range(3):
        await later.reserve(scope, tokens=300, cost=0)
    assert await later.flush_warnings() == 0

    # The tenant's requests_per_minute (10): the 8th request of a replica reaches 80 %; two
    # workers polling as two server processes post it once.
    for _ in range(4):
        await quotas.reserve(scope, tokens=0, cost=0)
    await quotas.flush_warnings()
    workers = [
        OutboxWorker(db, box, egress, notices_every_s=0.05, pipeline_poll_s=60) for _ in range(2)
    ]
    for worker in workers:
        await worker.start()
    try:
        for _ in range(100):
            if len(slack.messages) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)  # more rounds of both: nothing is posted twice
    finally:
        for worker in workers:
            await worker.close()
    assert [m["blocks"][0]["text"]["text"] for m in slack.messages] == [
        "Quota at 80 %: project tokens_per_minute",
        "Quota at 80 %: tenant requests_per_minute",
    ]
    assert _fields(slack.messages[1])["used"] == "8"
    assert slack.violations == []


async def test_broken_audit_chain_is_posted_once_to_every_chat(
    api: Api, owner: httpx.AsyncClient, slack: FakeSlack, teams: FakeTeams
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    base = f"/v1/projects/{project_id}/integrations"
    chat = {"target": "C0123456789", "base_url": f"{slack.url}/api/", "token": slack.token}
    ok(await owner.put(f"{base}/slack", json=chat))
    workflow = {"target": "3b1c6f7e-bot-app-id", "base_url": f"{teams.url}/workflow"}
    ok(await owner.put(f"{base}/teams", json=workflow))
    db, box = api.state.db, SecretBox.load(api.state.settings.home)
    egress = api.state.settings.egress_rules
    assert ok(await owner.post("/v1/audit/verify"))["ok"]
    assert await post_alerts(db, box, egress) == 0

    # An attacker with database access edits an event: the chain no longer holds.
    with system_scope():
        async with db.transaction() as s:
            await s.execute(
                text("UPDATE audit_events SET target = 'forged' WHERE tenant_id = :t AND seq = 2"),
                {"t": tenant_id},
            )
    for _ in range(2):  # verified twice: the same break, one alert
        report = ok(await owner.post("/v1/audit/verify"))
        assert not report["ok"] and report["broken"]["seq"] == 2
    assert await _kinds(api, tenant_id) == ["audit_failed"]
    assert await post_alerts(db, box, egress) == 2  # Slack and Teams
    assert await post_alerts(db, box, egress) == 0
    [message] = slack.messages
    assert message["blocks"][0]["text"]["text"] == "Audit verification failed"
    assert _fields(message)["seq"] == "2"
    [card] = teams.cards
    assert card["body"][0]["text"] == "Audit verification failed"
    assert {"title": "tenant", "value": tenant_id} in card["body"][2]["facts"]
    assert slack.violations == [] and teams.violations == []
