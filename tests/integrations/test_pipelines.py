"""Pipelines: the ``Pipeline`` contract on both fakes; through a real server, a run
triggered, followed by the integrations worker (or read on demand) to its result and
shown on the project and on the orchestrator run it was triggered for; bad input and
vendor refusals named; another tenant and narrower keys refused; the CLI's ``--wait``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from musubi.context import bind_tenant, system_scope
from musubi.egress.policy import EgressRules
from musubi.errors import InvalidInput
from musubi.gateway.secrets import SecretBox
from musubi.integrations.gitlab_pipelines import gitlab_status
from musubi.integrations.outbox import OutboxWorker
from musubi.integrations.pipeline import PIPELINES, Pipeline, pipeline_class
from musubi.integrations.pipeline_models import PipelineConfig, PipelineRun
from musubi.integrations.pipelines import open_pipeline, pipeline_names
from musubi.integrations.tracker import TrackerRefused
from musubi.orchestrator.models import Run, RunEvent
from musubi.testing import check_entry_point, check_pipeline
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.integrations.ci_fakes import FakeAzurePipelines, FakeGitLabCI

FakeCI = FakeAzurePipelines | FakeGitLabCI


@pytest.fixture
def azure_pipelines() -> Iterator[FakeAzurePipelines]:
    with FakeAzurePipelines().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def gitlab_ci() -> Iterator[FakeGitLabCI]:
    with FakeGitLabCI().serve() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(params=["azure_pipelines", "gitlab_ci"])
def ci(request: pytest.FixtureRequest) -> FakeCI:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def configured(fake: FakeCI, token: str | None = None) -> dict[str, Any]:
    """What a configuration of ``fake``'s vendor holds to reach it."""
    if isinstance(fake, FakeAzurePipelines):
        base_url, pipeline = f"{fake.url}/{fake.org}", "12"
        secret = {"token": token or fake.token}
    else:
        base_url, pipeline = fake.url, ""
        secret = {"token": token or fake.token, "trigger_token": fake.trigger_token}
    return {"base_url": base_url, "target": fake.project, "pipeline": pipeline, "secret": secret}


def client_for(fake: FakeCI, token: str | None = None) -> Pipeline:
    """Built as the server builds it: the kind's class, from the configuration."""
    cls = pipeline_class(fake.vendor)
    return cls.from_config(httpx.AsyncClient(timeout=10), **configured(fake, token))


class CISide:
    """The vendor's side of :func:`musubi.testing.check_pipeline`: what the fake holds,
    faults injected into it, and the requests that broke the vendor's description."""

    def __init__(self, fake: FakeCI) -> None:
        self.fake = fake

    @property
    def violations(self) -> list[Any]:
        return list(self.fake.violations)

    def held(self, external_id: str) -> dict[str, Any]:
        return self.fake.held(external_id)

    def finish(self, external_id: str, result: str) -> None:
        self.fake.finish(external_id, result)

    def fail_next(self, status: int, retry_after: str | None) -> bool:
        self.fake.faults.statuses = [status]
        return True


async def test_the_pipeline_contract(ci: FakeCI) -> None:
    """Each built-in is an entry point of the kind and keeps the contract a plugin's
    pipeline checks itself with (``check_pipeline``) against its vendor's fake: trigger,
    follow to a result, refusals and outages in the trackers' error hierarchy, every
    request as described."""
    check_entry_point(PIPELINES, ci.vendor, "musubi-platform")
    assert pipeline_class(ci.vendor).vendor == ci.vendor
    pipe, stranger = client_for(ci), client_for(ci, token="revoked-token-000")
    try:
        await check_pipeline(pipe, CISide(ci), refused=stranger)
        with pytest.raises(TrackerRefused, match="token was refused"):
            await stranger.status("1")
        with pytest.raises(TrackerRefused) as unknown:
            await pipe.status("999999")
        assert unknown.value.status == 404
        started = await pipe.trigger("main", {})
        assert started.web_url.startswith("https://")
    finally:
        await pipe.aclose()
        await stranger.aclose()
    assert ci.violations == []


def test_the_kind_lists_the_built_ins_and_names_an_unknown_one() -> None:
    assert {"azure_pipelines", "gitlab"} <= set(pipeline_names())
    with pytest.raises(InvalidInput, match=r"unknown pipeline kind 'jenkins'.*azure_pipelines"):
        pipeline_class("jenkins")
    azure, gitlab = pipeline_class("azure_pipelines"), pipeline_class("gitlab")
    assert (azure.default_base_url, gitlab.default_base_url) == ("", "https://gitlab.com")
    assert set(gitlab.secrets) == {"token", "trigger_token"} and set(azure.secrets) == {"token"}
    for bad in ("", "x", "0", "²", str(2**31)):
        with pytest.raises(InvalidInput) as refused:
            azure.check_pipeline(bad)
        assert refused.value.field == "pipeline"
    gitlab.check_pipeline("")  # GitLab triggers the project's pipeline: no id


async def test_opening_rechecks_the_egress_policy_and_the_install(tmp_path: Path) -> None:
    """A pipeline saved when its URL was allowed, opened after the operator narrowed the
    policy, or after its plugin was uninstalled: a refusal, not a crash."""
    box = SecretBox.load(tmp_path)
    row = PipelineConfig(
        kind="gitlab",
        base_url="http://127.0.0.1:9",
        target="a/b",
        pipeline="",
        secret=box.seal({"token": "t", "trigger_token": "tt"}),
    )
    await open_pipeline(row, box, EgressRules.parse("127.0.0.1").for_tenant("t1")).aclose()
    with pytest.raises(TrackerRefused, match="gitlab"):
        open_pipeline(row, box, EgressRules.parse("").for_tenant("t1"))
    row.kind = "uninstalled"
    with pytest.raises(TrackerRefused, match="unknown pipeline kind 'uninstalled'"):
        open_pipeline(row, box, EgressRules.parse("127.0.0.1").for_tenant("t1"))


def test_gitlab_statuses_map_onto_the_common_words() -> None:
    assert gitlab_status({"id": 1, "status": "manual"}).state == "running"
    assert gitlab_status({"id": 1, "status": "pending"}).state == "queued"
    skipped = gitlab_status({"id": 1, "status": "skipped"})
    assert skipped.done and skipped.result == "skipped"


def body_for(fake: FakeCI) -> dict[str, Any]:
    if isinstance(fake, FakeAzurePipelines):
        return {
            "kind": "azure_pipelines",
            "target": fake.project,
            "base_url": f"{fake.url}/{fake.org}",
            "pipeline": "12",
            "ref": "main",
            "token": fake.token,
        }
    return {
        "kind": "gitlab",
        "target": fake.project,
        "base_url": fake.url,
        "ref": "main",
        "token": fake.token,
        "trigger_token": fake.trigger_token,
    }


async def new_project(owner: httpx.AsyncClient, name: str = "app") -> str:
    return str(ok(await owner.post("/v1/projects", json={"name": name}), 201)["id"])


async def completed(owner: httpx.AsyncClient, url: str, tries: int = 300) -> dict[str, Any]:
    for _ in range(tries):
        run = ok(await owner.get(url))
        if run["state"] == "completed":
            return run  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"not completed: {run}")


async def test_a_triggered_run_is_followed_to_its_result(
    api: Api, owner: httpx.AsyncClient, ci: FakeCI
) -> None:
    """The worker follows the run; its result shows on the project's pipeline and as an
    event of the orchestrator run it was triggered for; every step audited."""
    project_id = await new_project(owner)
    base = f"/v1/projects/{project_id}/pipelines/ci"
    config = ok(await owner.put(base, json=body_for(ci)))
    assert ci.token not in json.dumps(config) and config["token_hint"] == f"…{ci.token[-4:]}"
    run_id = "run_pipeline_0001"
    me = ok(await owner.get("/v1/me"))
    with bind_tenant(me["tenant_id"]):
        async with api.state.db.transaction() as s:
            s.add(
                Run(
                    id=run_id,
                    project_id=project_id,
                    idea="x",
                    feature="f",
                    user_id=me.get("user_id") or "usr_x",
                    actor="test",
                    status="succeeded",
                )
            )
    started = ok(
        await owner.post(
            base + "/runs", json={"variables": {"MUSUBI_RUN": run_id}, "run_id": run_id}
        ),
        201,
    )
    assert started["state"] in ("queued", "running") and started["variables"] == ["MUSUBI_RUN"]
    assert ci.held(started["external_id"])["variables"] == {"MUSUBI_RUN": run_id}
    listed = ok(await owner.get(f"/v1/projects/{project_id}/pipelines"))["items"]
    assert listed[0]["last_run"]["id"] == started["id"]
    ci.finish(started["external_id"], "succeeded")
    worker = OutboxWorker(
        api.state.db,
        SecretBox.load(api.state.settings.home),
        api.state.settings.egress_rules,
        notices_every_s=0.05,
        pipeline_poll_s=0.05,
    )
    await worker.start()
    try:
        done = await completed(owner, f"{base}/runs/{started['id']}")
    finally:
        await worker.close()
    assert done["result"] == "succeeded" and done["finished_at"]
    assert ok(await owner.get(base))["last_run"]["result"] == "succeeded"
    assert [
        r["id"] for r in ok(await owner.get(base + "/runs", params={"run_id": run_id}))["items"]
    ] == [started["id"]]
    with bind_tenant(me["tenant_id"]):
        async with api.state.db.read() as s:
            events = list(await s.scalars(select(RunEvent).where(RunEvent.run_id == run_id)))
    [event] = [e for e in events if e.type == "pipeline.completed"]
    assert event.data["result"] == "succeeded" and event.data["pipeline"] == "ci"
    audit = ok(await owner.get("/v1/audit/events", params={"action": "pipeline.*"}))["items"]
    assert sorted(e["action"] for e in audit) == [
        "pipeline.completed",
        "pipeline.set",
        "pipeline.trigger",
    ]
    assert ci.violations == []


async def test_refresh_on_demand_and_a_revoked_token_stops_following(
    api: Api, owner: httpx.AsyncClient, gitlab_ci: FakeGitLabCI
) -> None:
    project_id = await new_project(owner)
    base = f"/v1/projects/{project_id}/pipelines/ci"
    ok(await owner.put(base, json=body_for(gitlab_ci)))
    first = ok(await owner.post(base + "/runs", json={}), 201)
    gitlab_ci.advance(first["external_id"], "running")
    url = f"{base}/runs/{first['id']}"
    assert ok(await owner.get(url, params={"refresh": True}))["vendor_status"] == "running"
    gitlab_ci.faults.statuses = [200]  # an answer without the pipeline's fields
    odd = ok(await owner.get(url, params={"refresh": True}))
    assert odd["state"] == "running" and "unexpected answer" in odd["error"]
    gitlab_ci.finish(first["external_id"], "canceled")
    assert ok(await owner.get(url))["state"] != "completed"  # not read without refresh
    got = ok(await owner.get(url, params={"refresh": True}))
    assert (got["state"], got["result"]) == ("completed", "canceled")
    second = ok(await owner.post(base + "/runs", json={"ref": "release"}), 201)
    assert gitlab_ci.held(second["external_id"])["ref"] == "release"
    gitlab_ci.token = "rotated-elsewhere"  # the read token was revoked
    got = ok(await owner.get(f"{base}/runs/{second['id']}", params={"refresh": True}))
    assert got["state"] == "error" and "token was refused" in got["error"]
    gitlab_ci.faults.statuses = [503]  # the trigger: a 5xx is answered 502, named
    r = await owner.post(base + "/runs", json={})
    assert r.status_code == 502 and "503" in r.text


async def test_bad_input_and_vendor_refusals_are_named(
    api: Api, owner: httpx.AsyncClient, azure_pipelines: FakeAzurePipelines
) -> None:
    project_id = await new_project(owner)
    base = f"/v1/projects/{project_id}/pipelines"
    good = body_for(azure_pipelines)
    cases = [
        ("ci", {**good, "kind": "jenkins"}, "installed: azure_pipelines, gitlab"),
        ("ci", {**good, "pipeline": ""}, "pipeline id"),
        ("ci", {**good, "pipeline": "²"}, "pipeline id"),  # a digit to str.isdigit
        ("ci", {**good, "pipeline": "99999999999"}, "pipeline id"),  # past int32
        ("ci", {**good, "token": None}, "token"),
        ("ci", {**good, "base_url": "http://169.254.169.254"}, "base_url"),
        ("ci", {**good, "ref": "main branch"}, "ref"),
        ("bad name!", good, "name"),
        ("gl", {**body_for(FakeGitLabCI()), "trigger_token": None}, "trigger_token"),
    ]
    for name, body, named in cases:
        r = await owner.put(f"{base}/{name}", json=body)
        assert r.status_code in (400, 422), r.text
        assert named in r.text, r.text
    assert (await owner.post(f"{base}/ci/runs", json={})).status_code == 404
    ok(await owner.put(f"{base}/ci", json=good))
    r = await owner.post(f"{base}/ci/runs", json={"variables": {"NOT_SETTABLE": "1"}})
    assert r.status_code == 502 and "NOT_SETTABLE" in r.text, r.text
    for bad in ("bad name", "ünï", ""):
        r = await owner.post(f"{base}/ci/runs", json={"variables": {bad: "1"}})
        assert r.status_code in (400, 422) and "variable name" in r.text, r.text
    r = await owner.post(f"{base}/ci/runs", json={"run_id": "run_missing"})
    assert r.status_code == 404 and "run_missing" in r.text
    r = await owner.get(f"{base}/ci/runs/ppr_0000")
    assert r.status_code == 404
    ok(await owner.put(f"{base}/ci", json={**good, "token": None, "pipeline": "77"}))
    r = await owner.post(f"{base}/ci/runs", json={})  # the stored token is kept
    assert r.status_code == 502 and "not found" in r.text
    with system_scope():
        async with api.state.db.read() as s:
            assert await s.scalar(select(PipelineRun.id)) is None
    assert azure_pipelines.violations == []


async def test_another_tenant_and_narrower_keys_are_refused(
    api: Api, owner: httpx.AsyncClient, gitlab_ci: FakeGitLabCI
) -> None:
    project_id = await new_project(owner)
    base = f"/v1/projects/{project_id}/pipelines/ci"
    ok(await owner.put(base, json=body_for(gitlab_ci)))
    run = ok(await owner.post(base + "/runs", json={}), 201)
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        for method, url in [
            ("GET", base),
            ("DELETE", base),
            ("POST", base + "/runs"),
            ("GET", f"{base}/runs/{run['id']}"),
            ("GET", f"/v1/projects/{project_id}/pipelines"),
        ]:
            r = await b.request(method, url, json={} if method == "POST" else None)
            assert r.status_code == 404, r.text
    _, viewer_key = await user_with_role(owner, "viewer-1", "viewer")
    async with api.client(viewer_key) as viewer:
        assert ok(await viewer.get(f"{base}/runs/{run['id']}"))["id"] == run["id"]
        r = await viewer.post(base + "/runs", json={})
        assert r.status_code == 403 and "integrations:write" in r.text
        assert (await viewer.put(base, json=body_for(gitlab_ci))).status_code == 403
    other = await new_project(owner, "other")
    _, narrow = await user_with_role(owner, "admin-2", "admin", project_id=other)
    async with api.client(narrow) as client:
        for method in ("GET", "DELETE"):
            r = await client.request(method, base)
            assert r.status_code in (403, 404), r.text
        r = await client.post(base + "/runs", json={})
        assert r.status_code in (403, 404), r.text
    assert len(gitlab_ci.pipelines) == 1  # nothing triggered by the refused calls


async def test_the_cli_runs_and_waits(
    api: Api, owner: httpx.AsyncClient, azure_pipelines: FakeAzurePipelines
) -> None:
    """``musubi integrations pipeline run --wait`` in a subprocess: it triggers, follows
    until the run completes, prints the result and exits 1 when it failed."""
    project_id = await new_project(owner)
    ok(await owner.put(f"/v1/projects/{project_id}/pipelines/ci", json=body_for(azure_pipelines)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    settings = api.state.settings
    env |= {
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",
    }
    code = "from musubi.cli.main import main; main()"
    args = ["integrations", "pipeline", "run", "app", "ci", "--var", "TARGET=eu", "--wait"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        "--poll",
        "0.1",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(600):
        if azure_pipelines.runs:
            break
        await asyncio.sleep(0.05)
    [external] = azure_pipelines.runs
    assert azure_pipelines.runs[external]["variables"] == {"TARGET": "eu"}
    azure_pipelines.finish(str(external), "failed")
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, err.decode()
    shown = json.loads(out)
    assert (shown["state"], shown["result"]) == ("completed", "failed")
    listed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "integrations",
        "pipeline",
        "status",
        "app",
        "ci",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    table, err = await listed.communicate()
    assert listed.returncode == 0, err.decode()
    assert str(external) in table.decode() and "failed" in table.decode()
    removed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "integrations", "pipeline", "delete", "app", "ci", env=env
    )
    assert await removed.wait() == 0
    assert ok(await owner.get(f"/v1/projects/{project_id}/pipelines"))["items"] == []


async def test_a_failed_pipeline_is_a_chat_notice(
    api: Api, owner: httpx.AsyncClient, gitlab_ci: FakeGitLabCI
) -> None:
    """The worker follows two runs; the failed one reaches the project's Slack channel
    as a ``gate_failed`` notice, once; the one that succeeded posts nothing."""
    from tests.integrations.chat_fakes import FakeSlack

    project_id = await new_project(owner)
    base = f"/v1/projects/{project_id}/pipelines/gates"
    ok(await owner.put(base, json=body_for(gitlab_ci)))
    fake_slack = FakeSlack()
    with fake_slack.serve():
        slack = fake_slack
        chat = {"target": "C0123456789", "base_url": f"{slack.url}/api/", "token": slack.token}
        ok(await owner.put(f"/v1/projects/{project_id}/integrations/slack", json=chat))
        failing = ok(await owner.post(base + "/runs", json={}), 201)
        passing = ok(await owner.post(base + "/runs", json={"ref": "release"}), 201)
        gitlab_ci.finish(failing["external_id"], "failed")
        gitlab_ci.finish(passing["external_id"], "succeeded")
        worker = OutboxWorker(
            api.state.db,
            SecretBox.load(api.state.settings.home),
            api.state.settings.egress_rules,
            notices_every_s=0.05,
            pipeline_poll_s=0.05,
        )
        await worker.start()
        try:
            await completed(owner, f"{base}/runs/{failing['id']}")
            await completed(owner, f"{base}/runs/{passing['id']}")
            for _ in range(200):
                if slack.messages:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # more rounds: nothing is posted twice
        finally:
            await worker.close()
        [message] = slack.messages
        text = json.dumps(message)
        assert "Pipeline gates failed" in text and failing["external_id"] in text
        assert slack.violations == []
