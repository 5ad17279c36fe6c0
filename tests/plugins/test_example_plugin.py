"""The sample plugin (examples/plugins/musubi-example), installed as any third-party
package is: discovered through its entry points and used through the API.

CI installs it with the README's second command; a checkout without it fails here, not
skips, so the plugin path cannot rot unnoticed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from musubi.gateway.providers.base import PROVIDERS
from musubi.integrations.tracker import TRACKERS
from musubi.knowledge.embeddings import make_embedder
from musubi.knowledge.embeddings.base import EMBEDDERS
from musubi.knowledge.workspace import Workspace
from musubi.orchestrator.steps import STEP_KINDS
from musubi.testing import check_embedder, check_entry_point, check_provider_class, check_step
from tests.api.helpers import ok
from tests.conftest import Api
from tests.integrations.specs import write_project

DIST = "musubi-example"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


def test_the_plugin_is_discovered_with_its_distribution() -> None:
    check_entry_point(PROVIDERS, "example_echo", DIST)
    check_entry_point(EMBEDDERS, "example_trigrams", DIST)
    check_entry_point(STEP_KINDS, "example_glossary", DIST)
    check_entry_point(TRACKERS, "example_files", DIST)
    impl = {i.name: i for i in PROVIDERS.implementations()}["example_echo"]
    assert impl.version == "0.1.0" and not impl.builtin


def test_the_plugins_implementations_keep_the_contracts() -> None:
    check_provider_class(PROVIDERS.load("example_echo"))
    check_embedder(make_embedder("example_trigrams"))
    check_step(STEP_KINDS.load("example_glossary"))


def test_the_plugin_embedder_indexes_and_searches(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "idx", "example_trigrams")
    try:
        assert ws.embedder is not None and ws.embedder.name == "example-trigrams"
        assert ws.store is not None and ws.store.dim == 128
    finally:
        ws.close()


@pytest.fixture
async def sdk(api: Api) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=api.owner_key) as c:
        yield c


async def test_a_chat_completion_is_served_by_the_plugin_provider(
    api: Api, sdk: openai.AsyncOpenAI
) -> None:
    async with api.client(api.owner_key) as owner:
        body = {"provider": "example_echo", "models": ["echo-1"]}
        ok(await owner.put("/v1/gateway/providers/echo", json=body))
        models = ok(await owner.get("/v1/models"))
    assert "echo-1" in [m["id"] for m in models["data"]]

    answer = await sdk.chat.completions.create(
        model="echo-1", messages=[{"role": "user", "content": "hello plugin"}]
    )
    assert answer.choices[0].message.content == "echo: hello plugin"
    assert answer.usage is not None and answer.usage.completion_tokens == 3

    stream = await sdk.chat.completions.create(
        model="echo-1",
        messages=[{"role": "user", "content": "streamed words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: streamed words"


async def test_an_unknown_provider_kind_lists_the_plugins_too(api: Api) -> None:
    async with api.client(api.owner_key) as owner:
        r = await owner.put("/v1/gateway/providers/x", json={"provider": "nope"})
    assert r.status_code == 422
    assert "example_echo" in r.json()["error"]["message"]


async def test_a_run_does_the_plugin_step_with_the_plugin_provider(api: Api) -> None:
    """The plugin's step, alone in a run, answered by the plugin's provider (which echoes
    the prompt: it holds a '## ' line, so the glossary validates) and written to the repo."""
    from tests.orchestrator.conftest import read_events

    async with api.client(api.owner_key) as owner:
        echo = {"provider": "example_echo", "models": ["echo-1"]}
        ok(await owner.put("/v1/gateway/providers/echo", json=echo))
        tenant = ok(await owner.get("/v1/me"))["tenant_id"]
        root = api.state.settings.effective_repos_root / tenant / "shop"
        root.mkdir(parents=True)
        project = ok(
            await owner.post("/v1/projects", json={"name": "shop", "repo_path": "shop"}), 201
        )
        body = {
            "steps": ["example_glossary"],
            "idea": "## Refund: money returned to a customer",
            "feature": "refunds",
            "models": {"example_glossary": "echo-1"},
        }
        run = ok(await owner.post(f"/v1/projects/{project['id']}/runs", json=body), 201)
        events = await read_events(owner, run["id"])
        shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    assert shown["status"] == "succeeded", events
    written = (root / "storage/glossary/refunds-example_glossary.md").read_text()
    assert "## Refund: money returned to a customer" in written


async def test_the_plugin_tracker_syncs_and_reconciles_through_the_api(
    api: Api, tmp_path: Path
) -> None:
    """The plugin's tracker configured like a built-in one: a sync writes each requirement
    as a JSON file once; a status set in a file by hand comes back through the reconcile
    into the spec; a webhook for it is refused (it has none)."""
    issues = tmp_path / "issues"
    async with api.client(api.owner_key) as owner:
        tenant = ok(await owner.get("/v1/me"))["tenant_id"]
        root = api.state.settings.effective_repos_root / tenant / "app"
        write_project(root)
        project = ok(
            await owner.post("/v1/projects", json={"name": "app", "repo_path": "app"}), 201
        )
        base = f"/v1/projects/{project['id']}/integrations/example_files"

        # the target and base_url are checked by the plugin's class; an unknown kind lists it
        bad = await owner.put(base, json={"target": "../up", "base_url": issues.as_uri()})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "target"
        bad = await owner.put(base, json={"target": "shop", "base_url": "file://elsewhere/x"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "base_url"
        unknown = await owner.put(base.replace("example_files", "redmine"), json={"target": "x"})
        assert unknown.status_code == 422 and "example_files" in unknown.json()["error"]["message"]

        body = {
            "target": "shop",
            "base_url": issues.as_uri(),
            "status_map": {"open": "Draft", "in progress": "Implementing", "closed": "Done"},
        }
        config = ok(await owner.put(base, json=body))  # no token: this tracker needs none
        assert config["kind"] == "example_files" and config["secrets_set"] == []

        assert ok(await owner.post(base + "/sync"))["queued"] == 2
        for _ in range(300):
            counts = ok(await owner.get(base))["counts"]
            if counts.get("done") == 2 and counts.get("linked") == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(counts)
        files = {p.name: json.loads(p.read_text()) for p in (issues / "shop").glob("*.json")}
        assert sorted(files) == ["1.json", "2.json"]
        by_item = {f["labels"][0]: (name, f) for name, f in files.items()}
        name, first = by_item["musubi-REQ-AUTH-001"]
        assert first["title"] == "REQ-AUTH-001: Login" and first["status"] == "open"
        assert ok(await owner.post(base + "/sync"))["queued"] == 0  # nothing twice
        spec = root / "storage/specs/auth-requirements.md"
        assert f"**Tracker**: shop#{first['key']}" in spec.read_text()

        # someone moves the issue on the tracker side: the reconcile brings it back
        path = issues / "shop" / name
        path.write_text(json.dumps({**first, "status": "In Progress"}))
        assert ok(await owner.post(base + "/reconcile")) == {"applied": 1, "unchanged": 1}
        text = spec.read_text()
        assert "**Status**: Implementing" in text.split("### REQ-AUTH-002")[0]
        assert ok(await owner.post(base + "/reconcile")) == {"unchanged": 2}
        assert ok(await owner.post(base + "/sync"))["queued"] == 0

        hook = await owner.post(config["webhook_path"], content=b"{}")
        assert hook.status_code == 401 and "reconcile" in hook.json()["error"]["message"]
