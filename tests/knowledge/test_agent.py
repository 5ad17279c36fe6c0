"""Agent mode of localisation, end to end: a real server, its gateway, and a scripted
upstream in the OpenAI format that answers with tool calls, then with the files.

What is pinned: the tools run against the project's real repository and index (their
answers are in the next request the upstream sees), the final answer is parsed and put
first, the lexical ranking fills the rest, the budget is enforced before any call and
during the loop, a bad tool call is answered with an error the model can correct, an
upstream 5xx ends the loop with the lexical ranking, and the route is scoped (another
tenant's project is 404, a key without ``models:use`` is 403; neither calls the model).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import LOOPBACK_FAKES, Api
from tests.gateway.fakes import FakeUpstream, serve
from tests.knowledge.conftest import repo_project
from tests.knowledge.test_localise import SHOP, _write

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

MUSUBI = str(Path(sys.executable).parent / "musubi")
MODEL = "gpt-4o-mini"
ISSUE = """Declined card charges are given up too early

When the acquirer declines a charge with a transient error, the charge is attempted again
only twice, whatever the attempts setting says. The retry loop stops one attempt short.
"""
Script = Callable[[list[dict[str, Any]]], dict[str, Any]]


def call(name: str, arguments: Any, ident: str = "c1") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": args}}


def tools(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def answer(files: list[dict[str, str]]) -> dict[str, Any]:
    return {"role": "assistant", "content": "```json\n" + json.dumps({"files": files}) + "\n```"}


@dataclass
class ToolUpstream(FakeUpstream):
    """Answers the n-th chat request of a conversation with ``turns[n]`` (an assistant
    message); keeps every request body."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def chat(self, request: Request) -> Response:
        body, failed = await self._enter(request, "chat")
        if failed:
            return failed
        self.bodies.append(body)
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        message = self.turns[min(turn, len(self.turns) - 1)]
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        choice = {"index": 0, "message": message, "finish_reason": finish}
        usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
        return JSONResponse(
            {
                "id": "chatcmpl-tools",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            }
        )


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def fake() -> AsyncIterator[tuple[ToolUpstream, str]]:
    upstream = ToolUpstream(name="tools")
    async with serve(upstream) as url:
        yield upstream, url


async def shop_project(
    api: Api, client: httpx.AsyncClient, url: str, tmp_path: Path, name: str = "shop"
) -> str:
    """The shop repository as a project of ``client``'s tenant, indexed, with an OpenAI
    credential at the fake."""
    body = {"provider": "openai", "api_key": "sk-test-openai-0001", "base_url": f"{url}/v1"}
    ok(await client.put("/v1/gateway/providers/openai", json=body))
    project = await repo_project(api, client, name, _write(tmp_path / name, SHOP))
    ok(await client.post(f"/v1/projects/{project}/knowledge/index"))
    return project


def search(project: str, **agent: Any) -> tuple[str, dict[str, Any]]:
    body = {"query": ISSUE, "files": True, "k": 5, "agent": {"model": MODEL, **agent}}
    return f"/v1/projects/{project}/knowledge/search", body


def tool_messages(body: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_the_agent_explores_the_real_repository_and_its_answer_comes_first(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    project = await shop_project(api, owner, url, tmp_path)
    plain = ok(await owner.post(*search(project)[:1], json={**search(project)[1], "agent": None}))
    lexical = [f["path"] for f in plain["files"]]
    # lexical mode used to miss this file; since issue 22 part 2 (path words "retry", the
    # import spread from the gateway) it ranks it first too: the agent's answer must still
    # come first, with the model's reason
    assert "shop/payments/retry.py" in lexical

    upstream.turns = [
        tools(call("search", {"query": "retry attempts charge"}, "s1")),
        tools(
            call("find_references", {"name": "RetryPolicy"}, "r1"),
            call("repo_map", {"query": "retry", "focus": ["shop/payments/gateway.py"]}, "m1"),
        ),
        tools(call("open_file", {"path": "payments/retry.py", "start": 1, "end": 8}, "o1")),
        answer([{"path": "payments/retry.py", "reason": "the loop runs attempts - 1 times"}]),
    ]
    path, body = search(project)
    out = ok(await owner.post(path, json=body))

    files = [f["path"] for f in out["files"]]
    assert files[0] == "shop/payments/retry.py"
    assert out["files"][0]["why"][0] == "agent: the loop runs attempts - 1 times"
    assert files[1:] == [p for p in lexical if p != files[0]][:4]  # the lexical rest
    agent = out["agent"]
    assert agent["steps"] == 4 and agent["stopped"] == "answer" and agent["model"] == MODEL
    assert agent["named"] == ["shop/payments/retry.py"]
    assert [c["tool"] for c in agent["tool_calls"]] == [
        "search",
        "find_references",
        "repo_map",
        "open_file",
    ]
    assert agent["input_tokens"] == 4000 and agent["output_tokens"] == 400
    assert agent["cost"] > 0

    # what the tools answered, as the model saw it in the next request
    assert len(upstream.bodies) == 4
    last = upstream.bodies[-1]
    found, refs, rmap, opened = tool_messages(last)
    assert "shop/payments/retry.py" in found
    assert refs.startswith("defined in: shop/payments/retry.py")
    assert "shop/payments/gateway.py" in refs  # it uses RetryPolicy
    assert "class RetryPolicy" in rmap or "def run(self, call)" in rmap
    assert opened.startswith("shop/payments/retry.py (lines 1-8 of")
    assert "5:     def run(self, call):" in opened
    assert [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"] == [
        "s1",
        "r1",
        "m1",
        "o1",
    ]
    first = upstream.bodies[0]
    assert first["model"] == MODEL and first["max_tokens"] == 800
    assert {t["function"]["name"] for t in first["tools"]} == {
        "search",
        "repo_map",
        "open_file",
        "find_references",
    }
    assert ISSUE.splitlines()[0] in first["messages"][1]["content"]

    # the tenant's ledger and audit saw it
    await api.state.ledger.flush()
    usage = {u["model"]: u for u in ok(await owner.get("/v1/usage"))["items"]}
    assert usage[MODEL]["requests"] == 4
    events = ok(await owner.get("/v1/audit/events", params={"action": "knowledge.localise.agent"}))
    assert any(e["action"] == "knowledge.localise.agent" for e in events["items"])


async def test_bad_tool_calls_are_answered_with_errors_the_model_can_correct(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    project = await shop_project(api, owner, url, tmp_path)
    upstream.turns = [
        tools(
            call("open_file", "{not json", "a"),
            call("rm_rf", {"path": "/"}, "b"),
            call("open_file", {"path": "../../../etc/passwd"}, "c"),
            call("open_file", {"path": 3}, "d"),
        ),
        tools(
            call("search", {"query": "x", "limit": 3}, "e"),
            call("open_file", {"path": "__init__.py"}, "f"),
            call("search", {"query": "retry"}, "g"),
            call("open_file", {"path": "shop/mailer.py", "end": 2}, "h"),
            call("search", {"query": "one too many"}, "i"),
        ),
        answer([{"path": "no/such/file.py"}, {"path": "shop/mailer.py", "reason": "r"}]),
    ]
    path, body = search(project)
    out = ok(await owner.post(path, json=body))
    answers = tool_messages(upstream.bodies[-1])
    assert answers[0].startswith("error: arguments are not JSON")
    assert answers[1].startswith("error: unknown tool 'rm_rf'")
    assert answers[2] == "error: '../../../etc/passwd' is not an indexed file"
    assert answers[3] == "error: open_file: 'path' must be a string"
    assert answers[4] == "error: search takes no limit"
    assert answers[5].startswith("error: '__init__.py' is ambiguous: ")
    assert "shop/payments/retry.py" in answers[6]  # the model corrected itself
    assert answers[7].startswith("shop/mailer.py (lines 1-2 of")
    assert answers[8] == "error: at most 4 tool calls per turn"
    oks = [c["ok"] for c in out["agent"]["tool_calls"]]
    assert oks == [False] * 6 + [True, True, False]
    assert out["agent"]["named"] == ["shop/mailer.py"]  # the path not indexed is dropped
    assert out["files"][0]["path"] == "shop/mailer.py"


async def test_the_budget_is_enforced_before_and_during_the_loop(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    project = await shop_project(api, owner, url, tmp_path)
    upstream.turns = [tools(call("search", {"query": "retry"}))]  # never answers

    path, body = search(project, estimate_only=True)
    est = ok(await owner.post(path, json=body))["agent"]
    assert est["stopped"] == "estimate only" and upstream.calls == 0
    estimate = est["estimate"]
    assert estimate["cost"] > 0 and estimate["input_tokens"] > estimate["first_prompt_tokens"]

    path, body = search(project, max_cost=estimate["cost"] / 2)
    r = await owner.post(path, json=body)
    assert r.status_code == 422 and "above the budget" in r.text
    assert upstream.calls == 0

    path, body = search(project, max_steps=2)
    out = ok(await owner.post(path, json=body))
    assert out["agent"]["stopped"] == "steps" and upstream.calls == 2
    assert out["agent"]["named"] == [] and out["files"]  # the lexical ranking

    path, body = search(project, max_tokens=estimate["first_prompt_tokens"] + 1000)
    out = ok(await owner.post(path, json=body))
    assert out["agent"]["stopped"] == "tokens" and out["agent"]["steps"] == 1
    assert upstream.calls == 2  # the same first request as before: the gateway's cache
    assert out["agent"]["cost"] == 0  # answered it, and the ledger charges nothing


async def test_an_upstream_failure_ends_the_loop_with_the_lexical_ranking(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    project = await shop_project(api, owner, url, tmp_path)
    plain_path, plain = search(project)
    lexical = ok(await owner.post(plain_path, json={**plain, "agent": None}))["files"]
    upstream.turns = [tools(call("search", {"query": "retry"}))]
    upstream.fail_every, upstream.fail_status = 1, 503
    out = ok(await owner.post(*search(project)[:1], json=search(project)[1]))
    assert out["agent"]["stopped"].startswith("upstream error")
    assert out["agent"]["steps"] == 0 and upstream.calls >= 1
    assert [f["path"] for f in out["files"]] == [f["path"] for f in lexical]


async def test_agent_mode_is_scoped_to_the_tenant_and_needs_models_use(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    project = await shop_project(api, owner, url, tmp_path)
    upstream.turns = [answer([{"path": "shop/mailer.py"}])]
    _, other = await new_tenant(owner, "other")
    async with api.client(other) as b:
        r = await b.post(*search(project)[:1], json=search(project)[1])
        assert r.status_code == 404, r.text
    _, viewer = await user_with_role(owner, "viewer", "viewer")
    async with api.client(viewer) as v:
        path, body = search(project)
        assert ok(await v.post(path, json={**body, "agent": None}))["files"]  # plain: allowed
        r = await v.post(path, json=body)
        assert r.status_code == 403 and "models:use" in r.text
    r = await owner.post(path, json={**body, "files": False})
    assert r.status_code == 422 and "files" in r.text
    assert upstream.calls == 0


async def test_the_cli_runs_the_agent_on_a_local_checkout_as_a_key(
    api: Api, owner: httpx.AsyncClient, fake: tuple[ToolUpstream, str], tmp_path: Path
) -> None:
    """``musubi search ISSUE --files --agent``: the index of a plain checkout, the gateway
    in the CLI's process on this machine's database, as the key (its credential, ledger)."""
    upstream, url = fake
    body = {"provider": "openai", "api_key": "sk-test-openai-0001", "base_url": f"{url}/v1"}
    ok(await owner.put("/v1/gateway/providers/openai", json=body))
    root = _write(tmp_path / "checkout", SHOP)
    upstream.turns = [
        tools(call("open_file", {"path": "shop/payments/retry.py", "end": 3})),
        answer([{"path": "shop/payments/retry.py", "reason": "off by one"}]),
    ]
    settings = api.state.settings
    env = {
        **os.environ,
        "MUSUBI_API_KEY": api.owner_key,
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            MUSUBI, *args, stdout=-1, stderr=-1, stdin=-3, env=env
        )
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, _, err = await cli("index", str(root), "--embedder", "hashing")
    assert code == 0, err
    common = ("search", ISSUE, "--files", "--repo", str(root), "--embedder", "hashing")
    code, out, err = await cli(*common, "--agent", "--model", MODEL, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["files"][0]["path"] == "shop/payments/retry.py"
    assert result["agent"]["stopped"] == "answer" and "agent gpt-4o-mini: estimate" in err
    opened = tool_messages(upstream.bodies[-1])[0]
    assert opened.startswith("shop/payments/retry.py (lines 1-3 of")  # read from the checkout
    code, _, err = await cli(*common, "--agent", "--model", MODEL, "--max-cost", "0.0000001")
    assert code != 0 and "above the budget" in err
    code, _, err = await cli(*common[:2], "--agent", "--repo", str(root), "--embedder", "hashing")
    assert code != 0 and "add --files" in err
    assert upstream.calls == 2
