"""Slack and Teams through a real server: notices reach the fakes in the vendors' formats;
the slash command and the buttons answer with a valid signature and refuse a forged or
stale one (401, audited); the Teams bot accepts a valid Bot Framework token and refuses
forged ones; an approval from chat approves the orchestrator run, for listed approvers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from joserfc.jwk import RSAKey

from musubi.context import bind_tenant
from musubi.orchestrator.models import Run, RunEvent
from tests.api.helpers import ok
from tests.conftest import Api
from tests.integrations.chat_fakes import FakeSlack, FakeTeams, slack_signature
from tests.integrations.test_roundtrip import project_with_specs

SIGNING = "slack-signing-secret-0001"
APP_ID = "3b1c6f7e-bot-app-id"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def teams() -> Iterator[FakeTeams]:
    with FakeTeams().serve() as fake:
        yield fake  # type: ignore[misc]


async def _run_awaiting_approval(api: Api, tenant_id: str, project_id: str) -> str:
    with bind_tenant(tenant_id):
        async with api.state.db.transaction() as s:
            run = Run(
                id="run_0123456789abcdef",
                project_id=project_id,
                idea="Export orders",
                feature="export",
                status="awaiting_approval",
                user_id="usr_x",
                actor="test",
            )
            s.add(run)
    return run.id


async def _events(api: Api, tenant_id: str, run_id: str) -> list[str]:
    from sqlalchemy import select

    with bind_tenant(tenant_id):
        async with api.state.db.read() as s:
            rows = await s.scalars(select(RunEvent.type).where(RunEvent.run_id == run_id))
            return list(rows)


async def test_slack_notices_commands_and_buttons(
    api: Api, owner: httpx.AsyncClient, slack: FakeSlack
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    base = f"/v1/projects/{project_id}/integrations/slack"
    config = ok(
        await owner.put(
            base,
            json={
                "target": "C0123456789",
                "base_url": f"{slack.url}/api/",
                "token": slack.token,
                "webhook_secret": SIGNING,
                "options": {"approvers": ["U_ALICE"]},
            },
        )
    )
    run_id = await _run_awaiting_approval(api, tenant_id, project_id)
    notice = {
        "kind": "approval_needed",
        "title": "Design ready",
        "text": "Approve?",
        "run_id": run_id,
    }
    assert ok(await owner.post(base + "/notify", json=notice)) == {"posted": True}
    [message] = slack.messages
    assert message["channel"] == "C0123456789"
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [e["value"] for e in actions["elements"]] == [run_id, run_id]
    assert slack.violations == []

    commands = f"{api.base_url}/v1/integrations/{config['id']}/slack/commands"
    now = int(time.time())

    async def command(
        text: str, user: str = "U_ALICE", ts: int = now, secret: str = SIGNING
    ) -> httpx.Response:
        body = urlencode({"command": "/musubi", "text": text, "user_id": user}).encode()
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            **slack_signature(secret, body, ts),
        }
        return await owner.post(commands, content=body, headers=headers)

    status = ok(await command("status"))
    assert status["response_type"] == "ephemeral" and "runs: awaiting_approval 1" in status["text"]
    trace = ok(await command("trace REQ-AUTH-001"))["text"]
    assert "REQ-AUTH-001" in trace and "Login" in trace
    assert "may not approve" in ok(await command(f"approve {run_id}", user="U_MALLORY"))["text"]
    # forged (wrong secret) and replayed after the 5-minute window: 401, audited
    assert (await command("status", secret="guessed")).status_code == 401
    assert (await command("status", ts=now - 301)).status_code == 401
    assert (await owner.post(commands, content=b"text=status")).status_code == 401
    rejected = ok(
        await owner.get("/v1/audit/events", params={"action": "integration.webhook_rejected"})
    )
    assert len(rejected["items"]) == 3

    # the Approve button, signed: the run is approved, as the Slack user
    payload = {
        "type": "block_actions",
        "user": {"id": "U_ALICE"},
        "actions": [{"action_id": "musubi_approve", "value": run_id}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    interactions = commands.replace("/commands", "/interactions")
    forged = await owner.post(
        interactions, content=body, headers=slack_signature("nope", body, now)
    )
    assert forged.status_code == 401
    assert "run.approved" not in await _events(api, tenant_id, run_id)
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        **slack_signature(SIGNING, body, now),
    }
    pressed = ok(await owner.post(interactions, content=body, headers=headers))
    assert pressed["text"] == f"Run {run_id} approved by U_ALICE."
    assert "run.approved" in await _events(api, tenant_id, run_id)
    approved = ok(
        await owner.get("/v1/audit/events", params={"action": "orchestrator.run.approved"})
    )
    assert approved["items"][0]["actor"] == "slack:U_ALICE"


async def test_teams_cards_and_bot_tokens(
    api: Api, owner: httpx.AsyncClient, teams: FakeTeams
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    base = f"/v1/projects/{project_id}/integrations/teams"
    config = ok(
        await owner.put(
            base,
            json={
                "target": APP_ID,
                "base_url": f"{teams.url}/workflow",
                "options": {"openid_url": f"{teams.url}/openid", "approvers": ["aad-alice"]},
            },
        )
    )
    notice = {
        "kind": "gate_failed",
        "title": "Gate failed",
        "text": "trace check",
        "facts": {"missing": "3"},
    }
    assert ok(await owner.post(base + "/notify", json=notice)) == {"posted": True}
    [card] = teams.cards
    assert card["type"] == "AdaptiveCard" and card["body"][2]["facts"] == [
        {"title": "missing", "value": "3"}
    ]
    assert teams.violations == []

    url = f"{api.base_url}/v1/integrations/{config['id']}/teams/messages"
    service = "https://smba.trafficmanager.net/emea/"
    activity = {
        "type": "message",
        "text": "trace REQ-AUTH-002",
        "serviceUrl": service,
        "from": {"id": "29:1", "aadObjectId": "aad-alice"},
        "conversation": {"id": "19:abc"},
    }

    async def send(token: str) -> httpx.Response:
        return await owner.post(url, json=activity, headers={"Authorization": f"Bearer {token}"})

    reply = ok(await send(teams.bot_token(APP_ID, service)))
    assert "REQ-AUTH-002" in reply["text"] and "Logout" in reply["text"]
    other_key = RSAKey.generate_key(2048, parameters={"kid": "bf-key-1"})
    forged = [
        teams.bot_token(APP_ID, service, key=other_key),  # not the Bot Framework's key
        teams.bot_token("another-bot", service),  # for another bot
        teams.bot_token(APP_ID, service, iss="https://evil.example"),
        teams.bot_token(APP_ID, service, exp=int(time.time()) - 600),  # expired
        teams.bot_token(APP_ID, "https://evil.example/"),  # serviceUrl differs
    ]
    for token in forged:
        r = await send(token)
        assert r.status_code == 401, r.text
    assert (await owner.post(url, json=activity)).status_code == 401


def test_slack_and_teams_are_chat_notifier_entry_points() -> None:
    """The chat notifiers are a kind: built-ins registered as a plugin's would be, each
    class carrying its own defaults and target rule."""
    from musubi.errors import InvalidInput
    from musubi.integrations.chat import CHAT_NOTIFIERS, notifier_class
    from musubi.integrations.service import all_kinds, chat_names, integration_class
    from musubi.integrations.slack import SlackNotifier
    from musubi.integrations.teams import TeamsNotifier
    from musubi.testing import check_entry_point

    check_entry_point(CHAT_NOTIFIERS, "slack", "musubi-platform")
    check_entry_point(CHAT_NOTIFIERS, "teams", "musubi-platform")
    assert notifier_class("slack") is SlackNotifier and integration_class("teams") is TeamsNotifier
    assert SlackNotifier.default_base_url == "https://slack.com/api/"
    assert SlackNotifier.needs_token and not TeamsNotifier.needs_token
    assert set(chat_names()) >= {"slack", "teams"} and "jira" in all_kinds()
    with pytest.raises(InvalidInput) as refused:
        SlackNotifier.check_target(" ")
    assert "channel id" in refused.value.message


async def test_two_workers_post_each_run_notice_once(
    api: Api, owner: httpx.AsyncClient, slack: FakeSlack
) -> None:
    """Two server processes' workers race for the same channel: each run event reaches
    Slack once, in order. A refused post is tried again the next round; a claim left by a
    worker that died is taken over once its lease runs out, not before."""
    import asyncio
    from datetime import timedelta

    from sqlalchemy import select

    from musubi.gateway.secrets import SecretBox
    from musubi.integrations.models import WebhookDelivery
    from musubi.integrations.notices import LEASE, post_run_notices
    from musubi.integrations.outbox import OutboxWorker
    from musubi.orchestrator.service import add_event
    from musubi.storage.base import utcnow

    project_id, _ = await project_with_specs(api, owner)
    tenant_id = ok(await owner.get("/v1/me"))["tenant_id"]
    chat = {"target": "C0123456789", "base_url": f"{slack.url}/api/", "token": slack.token}
    config = ok(await owner.put(f"/v1/projects/{project_id}/integrations/slack", json=chat))
    run_id = await _run_awaiting_approval(api, tenant_id, project_id)
    db, box = api.state.db, SecretBox.load(api.state.settings.home)
    egress = api.state.settings.egress_rules

    async def events(*types: str) -> None:
        with bind_tenant(tenant_id):
            async with db.transaction() as s:
                for type_ in types:
                    await add_event(s, run_id, type_, next="design", cost=0.5)

    def titles() -> list[str]:
        return [m["text"] for m in slack.messages]

    # Two rounds started together read the same cursor: the claims decide who posts.
    await events("run.awaiting_approval", "run.succeeded")
    for _ in range(3):
        await asyncio.gather(*(post_run_notices(db, box, egress) for _ in range(2)))
    assert titles() == [f"Run {run_id} awaits approval", f"Run {run_id} finished"]

    # Two workers, as two server processes run them, polling every 50 ms.
    workers = [
        OutboxWorker(db, box, egress, notices_every_s=0.05, pipeline_poll_s=60) for _ in range(2)
    ]
    for worker in workers:
        await worker.start()
    try:
        await events("run.failed", "run.awaiting_approval", "run.succeeded")
        for _ in range(200):
            if len(slack.messages) >= 5:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # more rounds of both: nothing is posted twice
    finally:
        for worker in workers:
            await worker.close()
    assert titles()[2:] == [
        f"Run {run_id} failed",
        f"Run {run_id} awaits approval",
        f"Run {run_id} finished",
    ]

    # A refused post gives its claim back: posted the next round, once.
    token, slack.token = slack.token, "xoxb-rotated"
    await events("run.failed")
    assert await post_run_notices(db, box, egress) == 0
    slack.token = token
    assert await post_run_notices(db, box, egress) == 1
    assert await post_run_notices(db, box, egress) == 0
    assert titles()[5:] == [f"Run {run_id} failed"]

    # A claim held by another (live) worker is left alone; one whose lease ran out (its
    # worker died before posting) is taken over.
    await events("run.succeeded")
    with bind_tenant(tenant_id):
        async with db.read() as s:
            seq = max(await s.scalars(select(RunEvent.seq).where(RunEvent.run_id == run_id)))
        async with db.transaction() as s:
            s.add(
                WebhookDelivery(
                    integration_id=config["id"],
                    delivery_id=f"run-notice:{run_id}:{seq}",
                    received_at=utcnow(),
                )
            )
    assert await post_run_notices(db, box, egress) == 0
    with bind_tenant(tenant_id):
        async with db.transaction() as s:
            claim = await s.get(WebhookDelivery, (config["id"], f"run-notice:{run_id}:{seq}"))
            assert claim is not None
            claim.received_at = utcnow() - LEASE - timedelta(seconds=1)
    assert await post_run_notices(db, box, egress) == 1
    assert await post_run_notices(db, box, egress) == 0
    assert titles()[6:] == [f"Run {run_id} finished"]
    assert slack.violations == []
