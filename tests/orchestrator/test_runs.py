"""Runs end to end: a real server on loopback, the gateway in front of a scripted upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from musubi.sdd.graph import build_graph
from musubi.sdd.project import load_project
from musubi.sdd.quality import validate_requirements
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.orchestrator.conftest import (
    BAD_REQUIREMENTS,
    ScriptedUpstream,
    good,
    read_events,
    stage_of,
    wire_project,
)

IDEA = "Export orders as CSV"


def _repo(api: Api, tenant: str, name: str = "shop") -> Path:
    return api.state.settings.effective_repos_root / tenant / name


async def _tenant(client: httpx.AsyncClient) -> str:
    return str(ok(await client.get("/v1/me"))["tenant_id"])


async def test_plan_run_writes_valid_requirement_design_and_task_files(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.succeeded", events
    assert fake.stages() == ["requirements", "design", "tasks"]  # one call per step
    root = _repo(api, await _tenant(owner))
    project = load_project(root)
    assert [r.id for r in project.requirements] == ["REQ-EXPORT-001", "REQ-EXPORT-002"]
    assert not [d for d in validate_requirements(project.requirements) if d.severity == "error"]
    assert [a.id for a in project.adrs] == ["ADR-001"]
    assert [t.id for t in project.tasks] == ["TASK-001", "TASK-002"]
    assert build_graph(project.tasks).groups == [["TASK-001"], ["TASK-002"]]
    # the design step was given the requirements document the first step wrote
    assert "REQ-EXPORT-002" in fake.chats[1][1]["content"]
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert [s["status"] for s in shown["steps"]] == ["done", "done", "done"]
    step = shown["steps"][0]
    assert step["model"] == "gpt-4.1" and step["attempts"] == 1 and len(step["prompt_hash"]) == 64
    assert step["input_tokens"] == 100 and step["output_tokens"] == 50 and step["cost"] > 0
    # estimate against actual, per step: the first prompt was counted exactly beforehand
    assert step["estimated"]["input_tokens"] == run["estimate"]["steps"][0]["input_tokens"]
    assert step["estimated"]["output_tokens"] == 1500  # no history yet: the default
    assert run["estimate"]["steps"][0]["output_basis"] == "default"
    assert shown["cost"] > 0
    assert (root / "storage/specs/export-requirements.md").is_file()
    assert (root / "storage/design/export-design.md").is_file()
    assert (root / "storage/tasks/export-tasks.md").is_file()
    # the next estimate expects what this tenant's steps really wrote (50 tokens each)
    est = ok(await owner.post(f"/v1/projects/{project_id}/runs/estimate", json={"idea": "x"}))
    assert [(s["output_tokens"], s["output_basis"]) for s in est["steps"]] == [(50, "history")] * 3
    # the calls went through the gateway as the calling key: the usage ledger has them
    await api.state.ledger.flush()
    usage = ok(await owner.get("/v1/usage"))
    assert "gpt-4.1" in str(usage)


async def test_an_invalid_ears_answer_is_repaired(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    answers = iter([BAD_REQUIREMENTS])

    def script(messages: list[dict[str, Any]]) -> str:
        if stage_of(messages) == "requirements" and len(messages) == 2:
            return next(answers)
        return good(messages)

    fake.script = script
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "feature": "export", "steps": ["requirements"]}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.succeeded", events
    attempts = [e for e in events if e["type"] == "step.attempt"]
    assert [a["valid"] for a in attempts] == [False, True]
    assert any("SHALL" in err for err in attempts[0]["errors"])
    repair = fake.chats[1]
    assert repair[2] == {"role": "assistant", "content": BAD_REQUIREMENTS}
    assert "does not pass validation" in repair[3]["content"]
    assert "acceptance criteria" in repair[3]["content"]
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert shown["steps"][0]["attempts"] == 2


async def test_a_model_that_stays_invalid_fails_the_step_with_its_messages(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.script = lambda messages: BAD_REQUIREMENTS
    project_id = await wire_project(api, owner, url)
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json={"idea": IDEA}), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.failed"
    assert fake.calls == 3  # one answer and two repairs, then it stops
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    step = shown["steps"][0]
    assert step["status"] == "failed" and step["raw"] == BAD_REQUIREMENTS
    assert {"ears.missing", "quality.no-criteria"} <= {d["code"] for d in step["diagnostics"]}
    assert [s["status"] for s in shown["steps"][1:]] == ["pending", "pending"]
    assert not (_repo(api, await _tenant(owner)) / "storage").exists()  # nothing written


async def test_approval_gate_and_events_in_order(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "feature": "export"}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    first = await read_events(owner, run["id"])
    assert first[-1] == {**first[-1], "type": "run.awaiting_approval", "next": "design"}
    assert fake.stages() == ["requirements"]  # the gate holds the next stage
    r = await owner.post(f"/v1/runs/{run['id']}/approve")
    assert ok(r)["status"] == "queued"
    await read_events(owner, run["id"], after=first[-1]["seq"])
    ok(await owner.post(f"/v1/runs/{run['id']}/approve"))
    rest = await read_events(owner, run["id"], after=first[-1]["seq"])
    every = await read_events(owner, run["id"])  # the whole log, replayed
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))
    assert every == first + rest
    types = [e["type"] for e in every]
    assert types[:3] == ["run.created", "run.started", "step.started"]
    assert types.count("run.approved") == 2 and types[-1] == "run.succeeded"
    done = [e["step"] for e in every if e["type"] == "step.done"]
    assert done == ["requirements", "design", "tasks"]
    assert fake.stages() == ["requirements", "design", "tasks"]
    again = await owner.post(f"/v1/runs/{run['id']}/approve")
    assert again.status_code == 409


async def test_budget_refuses_a_run_whose_estimate_exceeds_it(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "budget": 0.000001}
    est = ok(await owner.post(f"/v1/projects/{project_id}/runs/estimate", json=body))
    assert [s["step"] for s in est["steps"]] == ["requirements", "design", "tasks"]
    assert all(s["model"] == "gpt-4.1" and s["input_tokens"] > 0 for s in est["steps"])
    assert est["steps"][0]["method"].startswith("tiktoken")
    # later steps carry the earlier answers: their prompts are longer
    assert est["steps"][2]["input_tokens"] > est["steps"][1]["input_tokens"]
    assert est["steps"][1]["input_tokens"] > est["steps"][0]["input_tokens"]
    assert est["cost"] == round(sum(s["cost"] for s in est["steps"]), 8)
    assert est["within_budget"] is False
    r = await owner.post(f"/v1/projects/{project_id}/runs", json=body)
    assert r.status_code == 409, r.text
    assert "exceeds the budget" in r.json()["error"]["message"]
    assert fake.calls == 0
    assert ok(await owner.get(f"/v1/projects/{project_id}/runs"))["items"] == []
    for bad, field in [
        ({"steps": ["design", "requirements"]}, "steps"),
        ({"models": {"deploy": "gpt-4.1"}}, "models"),
        ({"feature": "../../etc"}, "feature"),
        ({"budget": -1}, "budget"),
    ]:
        r = await owner.post(f"/v1/projects/{project_id}/runs", json={"idea": IDEA, **bad})
        assert r.status_code == 422 and r.json()["error"]["field"].startswith(field), r.text
    r = await owner.post(
        f"/v1/projects/{project_id}/runs", json={"idea": IDEA, "models": {"design": "nope"}}
    )
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"], r.text
    enough = {"idea": IDEA, "budget": est["cost"] * 2, "steps": ["requirements"]}
    ok(await owner.post(f"/v1/projects/{project_id}/runs", json=enough), 201)


async def test_a_run_stops_when_its_real_spend_reaches_the_budget(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    fake.usage = {"prompt_tokens": 100, "completion_tokens": 1_000_000, "total_tokens": 1_000_100}
    project_id = await wire_project(api, owner, url)
    body: dict[str, Any] = {"idea": IDEA, "auto_approve": True}
    est = ok(await owner.post(f"/v1/projects/{project_id}/runs/estimate", json=body))
    body["budget"] = est["cost"] * 1.5  # the estimate fits; the answer is far longer
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.failed" and "budget reached" in events[-1]["error"]
    assert events[-1]["cost"] > body["budget"]  # the spend so far is reported
    assert fake.stages() == ["requirements"]  # no further step was started
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert [s["status"] for s in shown["steps"]] == ["done", "pending", "pending"]


async def test_a_file_the_user_changed_meanwhile_is_not_overwritten(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    import asyncio

    fake, url = scripted
    fake.gate = asyncio.Event()
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "feature": "export", "steps": ["requirements"]}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    while fake.held == 0:  # noqa: ASYNC110 - the fake has no event for "a request is held"
        await asyncio.sleep(0.01)
    target = _repo(api, await _tenant(owner)) / "storage/specs/export-requirements.md"
    target.parent.mkdir(parents=True)
    target.write_text("# mine\n")
    busy = await owner.post(f"/v1/projects/{project_id}/runs", json=body)
    assert busy.status_code == 409 and run["id"] in busy.json()["error"]["message"]
    fake.gate.set()
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.failed" and "conflict" in events[-1]["error"]
    assert target.read_text() == "# mine\n"


async def test_another_tenant_cannot_see_or_drive_a_run(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json={"idea": IDEA}), 201)
    await read_events(owner, run["id"])
    _, b_key = await new_tenant(owner, "b")
    async with api.client(b_key) as b:
        for method, path in [
            ("GET", f"/v1/runs/{run['id']}"),
            ("GET", f"/v1/runs/{run['id']}/events"),
            ("POST", f"/v1/runs/{run['id']}/approve"),
            ("POST", f"/v1/runs/{run['id']}/cancel"),
            ("GET", f"/v1/projects/{project_id}/runs"),
        ]:
            r = await b.request(method, path)
            assert r.status_code == 404, (method, path, r.text)
        r = await b.post(f"/v1/projects/{project_id}/runs", json={"idea": IDEA})
        assert r.status_code == 404, r.text
        assert ok(await b.get("/v1/me"))["tenant_id"] != run["tenant_id"]
    # a key restricted to another project of the same tenant does not reach it either
    other = ok(await owner.post("/v1/projects", json={"name": "other"}), 201)
    _, key = await user_with_role(owner, "dev", "developer", project_id=other["id"])
    async with api.client(key) as dev:
        r = await dev.get(f"/v1/runs/{run['id']}")
        assert r.status_code in (403, 404), r.text
        r = await dev.post(f"/v1/runs/{run['id']}/cancel")
        assert r.status_code in (403, 404), r.text
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert shown["status"] == "awaiting_approval"
    assert fake.stages() == ["requirements"]


async def test_cancel_stops_a_run_mid_step_and_writes_nothing(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    import asyncio

    fake, url = scripted
    fake.gate = asyncio.Event()
    project_id = await wire_project(api, owner, url)
    body = {"idea": IDEA, "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    while fake.held == 0:  # noqa: ASYNC110 - the fake has no event for "a request is held"
        await asyncio.sleep(0.01)
    assert ok(await owner.post(f"/v1/runs/{run['id']}/cancel"))["status"] == "cancelled"
    fake.gate.set()
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.cancelled"
    again = await owner.post(f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409
    await asyncio.sleep(0.3)  # were the call to go on, its answer would be written by now
    assert not (_repo(api, await _tenant(owner)) / "storage").exists()
    assert fake.answered == [] and len(fake.dropped) == 1  # the held call was abandoned


async def test_links_out_of_the_repository_are_neither_written_nor_read(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str], tmp_path: Path
) -> None:
    fake, url = scripted
    outside = tmp_path / "server-files"
    outside.mkdir()
    (outside / "secret.md").write_text("the server's secret\n")
    project_id = await wire_project(api, owner, url)
    repo = _repo(api, await _tenant(owner))
    (repo / "storage").symlink_to(outside, target_is_directory=True)
    body = {"idea": IDEA, "feature": "export", "auto_approve": True}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.failed" and "leads outside" in events[-1]["error"]
    assert sorted(p.name for p in outside.rglob("*")) == ["secret.md"]  # nothing written there
    (repo / "storage").unlink()
    (repo / "steering").mkdir()
    (repo / "steering" / "product.md").symlink_to(outside / "secret.md")
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.failed" and "steering/product.md" in events[-1]["error"]
    assert fake.calls == 0  # the secret never reached a model
